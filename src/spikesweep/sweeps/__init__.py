"""Named multiruns (experiments/*.yaml) and the tables that compare their runs."""
