using Lowbit.Evaluation;
using System.Diagnostics;
using System.Globalization;
using Lowbit.Backends.Cpu;
using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Bench.Commands;

/// <summary>
/// Decode-shaped linear layers (m = 1, or --tokens M for a prefill) per weight format, against the read bandwidth of the same run: the
/// seven matrices of a Llama block (q, k, v, o, gate, up, down at --dim/--hidden/--kv-dim) times --layers, so
/// the weights are far larger than the L3 and every byte comes from memory, as in decode.
/// </summary>
public static class LinearCommand
{
    public static readonly IReadOnlyDictionary<string, bool> Options = new Dictionary<string, bool>
    {
        ["--threads"] = true,
        ["--dim"] = true,
        ["--hidden"] = true,
        ["--kv-dim"] = true,
        ["--layers"] = true,
        ["--reps"] = true,
        ["--format"] = true,
        ["--bw-mb"] = true,
        ["--tokens"] = true,
    };

    public static int Run(Args args)
    {
        int threads = args.Int("--threads", 2), dim = args.Int("--dim", 2048), hidden = args.Int("--hidden", 5632);
        int kvDim = args.Int("--kv-dim", 256), layers = args.Int("--layers", 3), reps = args.Int("--reps", 20);
        int m = args.Int("--tokens", 1);
        var formats = args.All("--format") is { Count: > 0 } named ? named : ["bf16", "int8wo", "int4wo-64"];
        using var backend = new CpuBackend(threads);
        (int N, int K)[] shapes = [(dim, dim), (kvDim, dim), (kvDim, dim), (dim, dim), (hidden, dim), (hidden, dim), (dim, hidden)];

        var before = MemoryBandwidth.Measure(threads, args.Int("--bw-mb", 512), 3);
        Console.WriteLine($"before: {before}");
        // Every format's weights are built first and timed round-robin, so a burst of load on a shared machine
        // hits all formats alike; each keeps its best pass.
        var random = new Random(1);
        var sets = new List<(string Format, List<IWeight> Weights)>();
        foreach (string format in formats)
        {
            var weights = new List<IWeight>();
            for (int l = 0; l < layers; l++)
            {
                foreach (var (n, k) in shapes)
                {
                    using var dense = Tensor.Allocate(DType.BF16, n, k);
                    Span<ushort> bits = dense.AsSpan<ushort>();
                    for (int i = 0; i < bits.Length; i++)
                        bits[i] = DTypeConversion.SingleToBFloat16((random.NextSingle() - 0.5f) * 0.04f);
                    weights.Add(format == "bf16" ? new DenseWeight(Copy(dense)) : Quantizer.QuantizeWeight(Parse(format), dense));
                }
            }

            sets.Add((format, weights));
        }

        using var x = Tensor.Allocate(DType.F32, m, Math.Max(dim, hidden));
        using var y = Tensor.Allocate(DType.F32, m, Math.Max(dim, hidden));
        x.AsSpan<float>().Fill(0.01f);
        var best = new double[sets.Count];
        Array.Fill(best, double.MaxValue);
        for (int r = 0; r < reps + 1; r++) // rep 0 warms up
        {
            for (int f = 0; f < sets.Count; f++)
            {
                long t0 = Stopwatch.GetTimestamp();
                foreach (var w in sets[f].Weights)
                    backend.Linear(new TensorView(x.Data, DType.F32, m, w.InFeatures), w, new TensorView(y.Data, DType.F32, m, w.OutFeatures));
                double s = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (r > 0)
                    best[f] = Math.Min(best[f], s);
            }
        }

        var results = sets.Select((set, f) => (set.Format, Bytes: set.Weights.Sum(w => w.ByteLength), Seconds: best[f])).ToList();
        foreach (var (_, weights) in sets)
        {
            foreach (var w in weights)
                w.Dispose();
        }

        var after = MemoryBandwidth.Measure(threads, args.Int("--bw-mb", 512), 3);
        Console.WriteLine($"after:  {after}");
        double roofline = Math.Max(before.BestGBps, after.BestGBps);
        double baseline = results[0].Seconds;
        Console.WriteLine($"{threads} threads, {layers} layers of dim {dim}, hidden {hidden}, kv {kvDim}, m = {m}, best of {reps}; roofline {roofline:F1} GB/s");
        Console.WriteLine($"| format | MB | ms/step | GB/s | % of bandwidth | GFLOP/s | speed-up vs {results[0].Format} |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        long flops = 2L * m * shapes.Sum(s => (long)s.N * s.K) * layers;
        foreach (var (format, bytes, seconds) in results)
        {
            double gbps = bytes / seconds / 1e9;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {format} | {bytes / 1e6:F1} | {seconds * 1e3:F2} | {gbps:F1} | {100 * gbps / roofline:F0}% | {flops / seconds / 1e9:F1} | {baseline / seconds:F2}x |"));
        }

        return 0;
    }

    private static IQuantConfig Parse(string format)
    {
        try
        {
            return QuantConfigs.Parse(format);
        }
        catch (ArgumentException e)
        {
            throw new ArgsException($"unknown format '{format}': bf16 or {e.Message}");
        }
    }

    private static Tensor Copy(Tensor source)
    {
        var copy = Tensor.Allocate(source.DType, source.Shape);
        source.AsBytes().CopyTo(copy.AsBytes());
        return copy;
    }
}
