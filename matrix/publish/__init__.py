"""Stage 8, publish: build a release reproducibly, upload the wheel the gate proved."""
