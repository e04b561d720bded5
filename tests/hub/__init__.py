"""Hub tests: a local Hub-protocol server (`tests.hub.server`) and the publishing path of `trainer.hub`."""
