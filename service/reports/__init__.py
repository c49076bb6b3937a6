"""The safety report as a person reads it: one self-contained HTML page (inline SVG plots,
no script, nothing fetched), served by the API and embedded in the demo's report."""
