"""The shop floor: ingest, image store, uploads, inspections, flagging rules, review, watch,
overview."""
