"""A reference Verilog fully connected IF/LIF layer and its testbench, shipped in the package (hdl/).

A starting point for the hardware designer, not an accelerator: one synapse per clock, weights from the
`$readmemh` memory, parameters from params.vh, the saturating membrane and the multiply + shift leak of
fixed_point.py. The testbench feeds one exported layer the golden input spikes and counts the output
spikes that differ from the golden ones.
"""

from pathlib import Path
from typing import Any

import numpy as np

from spikesweep.export.fixed_point import neuron_membranes
from spikesweep.export.memory_files import to_words

LAYER_V = r"""// Fully connected IF/LIF layer, fixed point as in manifest.json (spikesweep export).
// One time step: start with in_spikes held; done pulses with out_spikes valid. clear zeroes the membranes.
module fc_spiking_layer #(
    parameter integer N_IN = 1, N_OUT = 1, W_BITS = 8, ACC_BITS = 24,
    parameter integer THRESHOLD = 1, V_RESET = 0, SOFT_RESET = 0, LEAKY = 1, DECAY_INPUT = 1,
    parameter integer LEAK_MULT = 1, LEAK_SHIFT = 1,
    parameter WEIGHT_FILE = "weight.mem", BIAS_FILE = "bias.mem"
) (
    input wire clk, input wire clear, input wire start,
    input wire [N_IN-1:0] in_spikes,
    output reg [N_OUT-1:0] out_spikes, output reg done
);
    reg signed [W_BITS-1:0] weight [0:N_IN*N_OUT-1];
    reg signed [ACC_BITS-1:0] bias [0:N_OUT-1];
    reg signed [ACC_BITS-1:0] v [0:N_OUT-1];
    initial begin $readmemh(WEIGHT_FILE, weight); $readmemh(BIAS_FILE, bias); end

    localparam signed [63:0] MAXV = (64'sd1 <<< (ACC_BITS - 1)) - 1;
    localparam signed [63:0] MINV = -(64'sd1 <<< (ACC_BITS - 1));
    function signed [63:0] sat(input signed [63:0] x);
        sat = x > MAXV ? MAXV : (x < MINV ? MINV : x);
    endfunction

    reg busy; integer i, j;
    reg signed [63:0] acc, x, vv, h;
    always @(posedge clk) begin
        done <= 1'b0;
        if (clear) begin
            for (j = 0; j < N_OUT; j = j + 1) v[j] <= SOFT_RESET ? 0 : V_RESET;
            busy <= 1'b0;
        end else if (start && !busy) begin
            busy <= 1'b1; i = 0; j = 0; acc = bias[0];
        end else if (busy) begin
            if (in_spikes[i]) acc = acc + weight[j * N_IN + i];
            if (i == N_IN - 1) begin
                x = sat(acc); vv = v[j];
                if (!LEAKY) h = vv + x;
                else if (DECAY_INPUT) h = vv + (((x - (vv - V_RESET)) * LEAK_MULT) >>> LEAK_SHIFT);
                else h = vv - (((vv - V_RESET) * LEAK_MULT) >>> LEAK_SHIFT) + x;
                h = sat(h);
                out_spikes[j] <= h >= THRESHOLD;
                v[j] <= h >= THRESHOLD ? (SOFT_RESET ? h - THRESHOLD : V_RESET) : h;
                if (j == N_OUT - 1) begin busy <= 1'b0; done <= 1'b1; end
                else begin j = j + 1; i = 0; acc = bias[j]; end
            end else i = i + 1;
        end
    end
endmodule
"""

TB_V = r"""// Testbench: golden input spikes of layer L{lin} through fc_spiking_layer, compared with the golden
// output spikes and membranes of layer L{neu}. Run from the package root: iverilog -g2012 -I . -o tb hdl/*.v && vvp tb
`timescale 1ns/1ps
module tb;
`include "params.vh"
    localparam integer S = {samples}, NI = L{lin}_IN_SIZE, NO = L{lin}_OUT_SIZE;
    reg [NI-1:0] inputs [0:S*T_STEPS-1];
    reg [NO-1:0] expected [0:S*T_STEPS-1];
    reg [ACC_BITS-1:0] membranes [0:S*T_STEPS*NO-1];
    reg clk = 0, clear = 1, start = 0; reg [NI-1:0] in_spikes;
    wire [NO-1:0] out_spikes; wire done;
    integer s, t, k, bad = 0, checked = 0, spikes = 0, bad_v = 0;
    fc_spiking_layer #(.N_IN(NI), .N_OUT(NO), .W_BITS(W_BITS), .ACC_BITS(ACC_BITS),
        .THRESHOLD(L{neu}_THRESHOLD), .V_RESET(L{neu}_V_RESET), .SOFT_RESET(L{neu}_SOFT_RESET),
        .LEAKY(L{neu}_LEAKY), .DECAY_INPUT(L{neu}_DECAY_INPUT), .LEAK_MULT(L{neu}_LEAK_MULT),
        .LEAK_SHIFT(L{neu}_LEAK_SHIFT), .WEIGHT_FILE(L{lin}_WEIGHT_FILE), .BIAS_FILE(L{lin}_BIAS_FILE))
      dut (.clk(clk), .clear(clear), .start(start), .in_spikes(in_spikes), .out_spikes(out_spikes), .done(done));
    always #5 clk = ~clk;
    initial begin
        $readmemh("hdl/L{lin}_input_spikes.mem", inputs);
        $readmemh("hdl/L{neu}_output_spikes.mem", expected);
        $readmemh("hdl/L{neu}_membranes.mem", membranes);
        for (s = 0; s < S; s = s + 1) begin
            clear = 1; @(posedge clk); #1 clear = 0;
            for (t = 0; t < T_STEPS; t = t + 1) begin
                in_spikes = inputs[s * T_STEPS + t]; start = 1; @(posedge clk); #1 start = 0;
                while (!done) @(posedge clk);
                #1;
                for (k = 0; k < NO; k = k + 1) begin
                    if (out_spikes[k] !== expected[s * T_STEPS + t][k]) bad = bad + 1;
                    spikes = spikes + out_spikes[k];
                    if (dut.v[k] !== membranes[(s * T_STEPS + t) * NO + k]) bad_v = bad_v + 1;
                end
                checked = checked + NO;
            end
        end
        $display("CHECKED %0d SPIKES %0d MISMATCHES %0d MEMBRANE_MISMATCHES %0d", checked, spikes, bad, bad_v);
        $finish;
    end
endmodule
"""


def fc_layer_pair(man: dict[str, Any]) -> tuple[int, int] | None:
    """The first linear layer fed by spikes (0/1) and followed by a neuron: what the reference module computes."""
    layers = man["layers"]
    for i in range(len(layers) - 1):
        k = i - 1
        while k >= 0 and layers[k]["kind"] in ("flatten", "maxpool"):  # both keep spikes spikes
            k -= 1
        spikes_in = layers[k]["kind"] == "neuron" if k >= 0 else man["input"]["bits"] == 1
        if spikes_in and layers[i]["kind"] == "linear" and layers[i + 1]["kind"] == "neuron":
            return i, i + 1
    return None


def _bits_words(spikes: np.ndarray) -> list[str]:
    """[N, T, n] 0/1 -> one hex word per (sample, step), bit k = neuron k."""
    n = spikes.shape[-1]
    flat = spikes.reshape(-1, n).astype(np.int64)
    return [format(int("".join(str(b) for b in row[::-1]), 2), f"0{(n + 3) // 4}x") for row in flat]


def write_hdl(root: Path, man: dict[str, Any]) -> dict[str, Any] | None:
    """hdl/ under the package: the module, a testbench for the first FC spiking layer and its golden spikes."""
    pair = fc_layer_pair(man)
    if pair is None:
        return None
    lin, neu = pair
    hdl = root / "hdl"
    hdl.mkdir(exist_ok=True)
    gold = man["golden"]
    inputs = np.load(root / (gold["layers"][lin - 1] if lin > 0 else gold["input"]))
    outputs = np.load(root / gold["layers"][neu])
    n, t = inputs.shape[:2]
    (hdl / f"L{lin}_input_spikes.mem").write_text("\n".join(_bits_words(inputs.reshape(n, t, -1))) + "\n")
    (hdl / f"L{neu}_output_spikes.mem").write_text("\n".join(_bits_words(outputs.reshape(n, t, -1))) + "\n")
    v = neuron_membranes(np.load(root / gold["layers"][lin]), man["layers"][neu]["params"], man["acc_bits"])
    (hdl / f"L{neu}_membranes.mem").write_text("\n".join(to_words(v, man["acc_bits"])) + "\n")
    (hdl / "fc_spiking_layer.v").write_text(LAYER_V)
    (hdl / "tb_fc_spiking_layer.v").write_text(TB_V.replace("{lin}", str(lin)).replace("{neu}", str(neu))
                                                 .replace("{samples}", str(n)))
    return {"module": "hdl/fc_spiking_layer.v", "testbench": "hdl/tb_fc_spiking_layer.v", "layer": lin, "neuron": neu,
            "run": "iverilog -g2012 -I . -o tb hdl/fc_spiking_layer.v hdl/tb_fc_spiking_layer.v && vvp tb"}
