using Lowbit.Cuda;
using Lowbit.Evaluation;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cli.Commands;

/// <summary>
/// <c>lowbit bench --device cuda --shape llama3-8b</c>: a random-weight model of a known shape built in GPU
/// memory per format (the GPU machine cannot download checkpoints), timed as torchao's README table: decode
/// tok/s at batch 1, prefill tok/s per prompt length, weight bytes, effective GB/s against the GPU's copy
/// bandwidth measured in the same run, peak GPU memory; gpt-fast's tok/s on the same GPU kind beside it
/// (ILGPU-NOTES.md: measured with gpt-fast's own code, torch.compile, random weights).
/// </summary>
internal static class ShapeBench
{
    /// <summary>gpt-fast's decode tok/s for Llama-3-8B shapes on an H100 (batch 1).</summary>
    private static readonly Dictionary<string, double> GptFastLlama3On8bH100 = new()
    {
        ["bf16"] = 158.6,
        ["int8wo"] = 205.0,
        ["int4wo-64"] = 262.0,
        ["int4wo-128"] = 265.4,
    };

    /// <param name="context">Decode starts at this position (attention then reads that many cache rows a layer).</param>
    public static int Run(CudaBackend cuda, string shape, IReadOnlyList<string> formats, int gen, int reps, IReadOnlyList<int> prompts, bool profile,
        IReadOnlyList<DecodeOps> whatIfs, DType kvCache = DType.F32, int context = 0, SamplingOptions? sampling = null)
    {
        sampling ??= SamplingOptions.Greedy;
        var config = SyntheticModel.Shape(shape);
        int maxSeq = Math.Max(context + gen + 1, prompts.Count == 0 ? 0 : prompts.Max());
        Console.Error.WriteLine($"{cuda.Name}: copy bandwidth");
        double copyGBps = cuda.CopyBandwidth();
        long baseline = CudaBackend.DeviceMemoryUsed();
        Console.WriteLine($"| format | weights (GB) | decode tok/s | GB/s | % of copy bandwidth | gpt-fast tok/s | {string.Join(" | ", prompts.Select(p => $"prefill {p} tok/s (TFLOP/s)"))} | peak GPU memory (GB) |");
        Console.WriteLine($"|---|---:|---:|---:|---:|---:|{string.Concat(prompts.Select(_ => "---:|"))}---:|");
        foreach (string format in formats)
        {
            Console.Error.WriteLine($"{format}: random {shape} weights on the GPU");
            using var weights = SyntheticModel.Build(cuda, config, Linear(cuda, format));
            cuda.PrepareWeights(weights);
            using var transformer = new Transformer(config, weights, cuda, maxSeq, kvCache);
            long peak = 0;
            void Sample() => peak = Math.Max(peak, CudaBackend.DeviceMemoryUsed() - baseline);

            Console.Error.WriteLine($"{format}: decode {gen} tokens");
            double decode;
            using (var state = transformer.NewState(1))
            {
                decode = SpeedBenchmark.Decode(transformer, state, gen, reps, context, sampling);
                Sample();
            }
            foreach (var skipped in whatIfs)
            {
                cuda.Skipped = skipped;
                using var state = transformer.NewState(1);
                double t = SpeedBenchmark.Decode(transformer, state, gen, reps, context, sampling);
                cuda.Skipped = DecodeOps.None;
                Console.Error.WriteLine($"{format}: decode without {skipped}: {t:F1} tok/s ({1e6 / t:F0} us a token) against {decode:F1} ({1e6 / decode:F0} us)");
            }
            var prefill = new List<double>();
            foreach (int p in prompts)
            {
                Console.Error.WriteLine($"{format}: prefill {p} tokens");
                using var state = transformer.NewState(p);
                prefill.Add(SpeedBenchmark.Prefill(transformer, state, p, reps));
                Sample();
            }
            if (profile)
            {
                Profile(cuda, config, weights, maxSeq, kvCache);
                if (prompts.Count > 0)
                    ProfilePrefill(cuda, config, weights, maxSeq, prompts.Max(), kvCache);
            }
            long bytes = weights.DecodeBytes;
            double gbps = bytes * decode / 1e9;
            string anchor = shape == "llama3-8b" && GptFastLlama3On8bH100.TryGetValue(format, out double a) ? $"{a:F1}" : "";
            Console.WriteLine($"| {format} | {bytes / 1e9:F2} | {decode:F1} | {gbps:F0} | {100 * gbps / copyGBps:F0}% | {anchor} | " +
                $"{string.Join(" | ", prefill.Select((t, i) => $"{t:F0} ({t * PrefillFlopsPerToken(config, weights, prompts[i]) / 1e12:F1})"))} | {peak / 1e9:F1} |");
        }
        Console.WriteLine($"{shape} random weights on {cuda.Name}; decode {gen} tokens from position {context} ({CommonOptions.DescribeSampling(sampling)}), {kvCache} KV cache, best of {reps}; " +
            $"copy bandwidth {copyGBps:F0} GB/s (read + write, 16-byte loads); gpt-fast figures: H100, same shapes (ILGPU-NOTES.md).");
        return 0;
    }

    /// <summary>The FLOP a prefill of <paramref name="prompt"/> tokens does, per token: every layer's linear layers for each
    /// token, the classifier for the last one only (as Transformer.Forward), and causal attention (q·k and p·v, 2·D
    /// FLOP each a query-key pair, t + 1 keys for the query at position t).</summary>
    public static double PrefillFlopsPerToken(ModelConfig config, ModelWeights weights, int prompt)
    {
        double layers = 2.0 * weights.Layers.Sum(l => l.Linears().Sum(x => (double)x.Weight.OutFeatures * x.Weight.InFeatures));
        double classifier = 2.0 * weights.Classifier.OutFeatures * weights.Classifier.InFeatures / prompt;
        double attention = 4.0 * config.HeadDim * config.NumHeads * config.NumLayers * (prompt + 1) / 2;
        return layers + classifier + attention;
    }

    /// <summary>GPU time per operation of one eager prefill of <paramref name="prompt"/> tokens, to stderr as a table.</summary>
    private static void ProfilePrefill(CudaBackend cuda, ModelConfig config, ModelWeights weights, int maxSeq, int prompt, DType kvCache)
    {
        using var profiler = new KernelProfiler(cuda);
        using var transformer = new Transformer(config, weights, profiler, maxSeq, kvCache);
        using var state = transformer.NewState(prompt);
        int[] tokens = [.. Enumerable.Range(0, prompt).Select(i => i * 7919 % config.VocabSize)];
        transformer.Forward(tokens, 0, state); // first use: kernels load
        profiler.Reset();
        transformer.Forward(tokens, 0, state);
        var rows = profiler.Report();
        double total = rows.Sum(r => r.Microseconds);
        Console.Error.WriteLine($"| op (prefill of {prompt} tokens) | calls | GPU us | share |");
        Console.Error.WriteLine("|---|---:|---:|---:|");
        foreach (var (name, calls, us, _) in rows.OrderByDescending(r => r.Microseconds))
            Console.Error.WriteLine($"| {name} | {calls} | {us:F0} | {100 * us / total:F1}% |");
        Console.Error.WriteLine($"| total | {rows.Sum(r => r.Calls)} | {total:F0} | |");
    }

    /// <summary>GPU time per operation over 8 eager decode steps (positions 8..15), to stderr as a table.</summary>
    private static void Profile(CudaBackend cuda, ModelConfig config, ModelWeights weights, int maxSeq, DType kvCache)
    {
        const int steps = 8;
        using var profiler = new KernelProfiler(cuda);
        using var transformer = new Transformer(config, weights, profiler, maxSeq, kvCache);
        using var state = transformer.NewState(1);
        for (int pos = 0; pos < 2 * steps; pos++)
        {
            if (pos == steps)
                profiler.Reset();
            transformer.Forward([1], pos, state);
        }
        var rows = profiler.Report();
        double total = rows.Sum(r => r.Microseconds);
        Console.Error.WriteLine($"| op (per token) | calls | GPU us | share | weight GB/s |");
        Console.Error.WriteLine("|---|---:|---:|---:|---:|");
        foreach (var (name, calls, us, bytes) in rows.OrderByDescending(r => r.Microseconds))
            Console.Error.WriteLine($"| {name} | {calls / steps} | {us / steps:F1} | {100 * us / total:F1}% | {(bytes == 0 ? "" : $"{bytes / us / 1e3:F0}")} |");
        Console.Error.WriteLine($"| total | {rows.Sum(r => r.Calls) / steps} | {total / steps:F1} | | |");
    }

    /// <summary>How a format's random linear layers are made on the device (<see cref="CudaBackend.RandomWeight"/>);
    /// null: dense BF16 tensors, which take the fused q/k/v and gate·up kernels.</summary>
    private static Func<int, int, uint, IWeight>? Linear(CudaBackend cuda, string format) =>
        format == "bf16" ? null : (n, k, seed) => cuda.RandomWeight(format, n, k, (int)seed);
}
