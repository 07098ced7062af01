"""The shop floor: ingest, image store, inspections, flagging rules, review, watch, overview."""
