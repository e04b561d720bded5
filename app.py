"""Phi-3 Fine-Tune Studio: the Hugging Face Space entry point (`python app.py`)."""

from trainer.ui import launch

if __name__ == "__main__":
    launch()
