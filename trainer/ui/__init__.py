"""The web app (Gradio Blocks), one module per tab.

- `trainer.ui.app`: assembles the tabs (`build_app`) and serves them (`launch`).
- `trainer.ui.context`: the `AppContext` each tab is given (services and the few shared components).
- `trainer.ui.form`: the form generated from RunConfig, and problems shown next to their fields.
- `trainer.ui.train_tab`, `trainer.ui.runs_tab`, `trainer.ui.compare_tab`: each builds its components and wires
  its own events.

Example:
    python app.py            # http://127.0.0.1:7860
"""

from trainer.ui.app import build_app, build_studio, launch

__all__ = ["build_app", "build_studio", "launch"]
