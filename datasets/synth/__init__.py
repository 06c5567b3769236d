"""The synthetic talking-head world: scripted speech, talking motion and renders of made-up people."""
