"""Hardware hand-off: a trained chain network as a NIR graph, or as a bit-exact fixed-point FPGA package
with an integer reference simulator (docs: README, `spikesweep export`)."""
