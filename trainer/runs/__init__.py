"""A run's whole life, behind one seam: `trainer.runs.service.RunService`.

Front ends (the web app, the CLI) call the service; its parts each have one job:

- `state`: `RunState`, the only spelling of a run's state;
- `folder`: the run folder, the one writer of `status.json`, `exit.json` and the events;
- `store`: the job table (SQLite), rebuilt from the run folders when damaged;
- `processes`: a run's worker processes (argv, environment, alive, signals, exit code), with psutil;
- `queue`: one run at a time: start, watch, cancel, recover, adopt runs started elsewhere;
- `remote`: the Hugging Face Jobs backend (a run on the user's own Job, followed into the same folder);
- `access`: who may do what (local user, signed-in user, admin, visitor) and the per-user limits;
- `service`: `RunService`, where access, the checks before queueing and the run lookup happen once.
"""
