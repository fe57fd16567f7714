using System.Diagnostics;
using System.Globalization;
using Lowbit.Generation;
using Lowbit.Models;

namespace Lowbit.Bench.Commands;

/// <summary>
/// Lowbit's prefill and decode speed on the CPU, judged against the read bandwidth measured in the same
/// run (decode is memory-bound: every weight is read once per token) and against llama.cpp's llama-bench
/// on the same weights, run back to back in this process's run.
/// </summary>
public static class CpuCommand
{
    public static readonly IReadOnlyDictionary<string, bool> Options = new Dictionary<string, bool>
    {
        ["--model"] = true, ["--threads"] = true, ["--prompt"] = true, ["--gen"] = true, ["--reps"] = true,
        ["--llama-bin"] = true, ["--gguf"] = true, ["--bw-mb"] = true,
    };

    private sealed record Row(string Engine, string Model, string Format, long DecodeBytes, double PrefillTps, double DecodeTps);

    public static int Run(Args args)
    {
        var models = args.All("--model");
        if (models.Count == 0)
            throw new ArgsException("option '--model' is required");
        int threads = args.Int("--threads", 2), prompt = args.Int("--prompt", 128), gen = args.Int("--gen", 64), reps = args.Int("--reps", 3);
        int bwMb = args.Int("--bw-mb", 1024);

        var before = Bandwidth.Measure(threads, bwMb, 5);
        Console.WriteLine($"before: {before}");
        var rows = new List<Row>();
        foreach (string dir in models)
            rows.Add(MeasureLowbit(dir, threads, prompt, gen, reps));
        if (args.String("--llama-bin") is { } bin)
        {
            string exe = Path.Combine(bin, "llama-bench");
            foreach (string gguf in args.All("--gguf"))
            {
                var result = LlamaCppCommand.Bench(exe, gguf, threads, prompt, gen, reps);
                var pp = result.First(r => r.Test.StartsWith("pp", StringComparison.Ordinal));
                var tg = result.First(r => r.Test.StartsWith("tg", StringComparison.Ordinal));
                rows.Add(new Row("llama.cpp", Path.GetFileNameWithoutExtension(gguf), pp.Type, pp.SizeBytes, pp.TokensPerSecond, tg.TokensPerSecond));
            }
        }
        var after = Bandwidth.Measure(threads, bwMb, 5);
        Console.WriteLine($"after:  {after}");

        // The roofline: the best streaming read seen in this run, before or after.
        double roofline = Math.Max(before.BestGBps, after.BestGBps);
        Console.WriteLine();
        Console.WriteLine($"{threads} threads, prefill {prompt} tokens, decode {gen} tokens, best of {reps}; roofline {roofline:F1} GB/s read");
        Console.WriteLine("| engine | model | weights | bytes/token (MB) | prefill tok/s | decode tok/s | decode GB/s | % of bandwidth | roofline tok/s |");
        Console.WriteLine("|---|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            double gbps = r.DecodeBytes * r.DecodeTps / 1e9;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Engine} | {r.Model} | {r.Format} | {r.DecodeBytes / 1e6:F1} | {r.PrefillTps:F1} | {r.DecodeTps:F2} | {gbps:F1} | {100 * gbps / roofline:F0}% | {roofline * 1e9 / r.DecodeBytes:F1} |"));
        }
        return 0;
    }

    /// <summary>Prefill of <paramref name="prompt"/> tokens from position 0 and greedy decode of
    /// <paramref name="gen"/> tokens from position 0, as llama-bench's pp and tg tests do; best of reps.</summary>
    private static Row MeasureLowbit(string dir, int threads, int prompt, int gen, int reps)
    {
        using var model = LanguageModel.Load(dir, new ModelLoadOptions { Threads = threads, MaxSequenceLength = Math.Max(prompt, gen) + 1 });
        Console.Error.WriteLine($"lowbit: {dir} on {model.Backend.Name}");
        const int chunk = 64;
        using var state = new DecodeState(model.Config, model.Transformer.MaxSequenceLength, chunk);
        var random = new Random(1);
        int[] tokens = [.. Enumerable.Range(0, prompt).Select(_ => random.Next(model.Config.VocabSize))];

        double Prefill()
        {
            var clock = Stopwatch.StartNew();
            for (int start = 0; start < prompt; start += chunk)
                model.Transformer.Forward(tokens.AsSpan(start, Math.Min(chunk, prompt - start)), start, state);
            return prompt / clock.Elapsed.TotalSeconds;
        }

        double Decode()
        {
            int token = 1;
            var clock = Stopwatch.StartNew();
            for (int pos = 0; pos < gen; pos++)
            {
                model.Transformer.Forward([token], pos, state);
                token = Sampler.ArgMax(state.Logits.Row<float>(0));
            }
            return gen / clock.Elapsed.TotalSeconds;
        }

        Prefill(); // warm-up: JIT tiers, page faults of the mapped weights
        Decode();
        double prefill = 0, decode = 0;
        for (int r = 0; r < reps; r++)
        {
            prefill = Math.Max(prefill, Prefill());
            decode = Math.Max(decode, Decode());
        }
        string format = string.Join("+", model.Weights.Linears().Select(l => l.Weight.FormatName).Distinct());
        return new Row("lowbit", Path.GetFileName(Path.TrimEndingDirectorySeparator(dir)), format, model.Weights.DecodeBytes, prefill, decode);
    }
}
