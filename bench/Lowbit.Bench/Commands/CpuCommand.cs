using Lowbit.Evaluation;
using System.Diagnostics;
using System.Globalization;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Models.IO;
using Lowbit.Quantization.Configs;

namespace Lowbit.Bench.Commands;

/// <summary>
/// Lowbit's prefill and decode speed on the CPU, judged against the read bandwidth measured in the same
/// run (decode is memory-bound: every weight is read once per token) and against llama.cpp's llama-bench
/// on the same weights. This machine's bandwidth drifts by 2x within minutes, so the engines take turns:
/// each round measures the bandwidth, then every Lowbit model, then every GGUF once; each figure is the
/// best over the rounds.
/// </summary>
public static class CpuCommand
{
    public static readonly IReadOnlyDictionary<string, bool> Options = new Dictionary<string, bool>
    {
        ["--model"] = true,
        ["--quant"] = true,
        ["--threads"] = true,
        ["--prompt"] = true,
        ["--gen"] = true,
        ["--rounds"] = true,
        ["--llama-bin"] = true,
        ["--gguf"] = true,
        ["--bw-mb"] = true,
        ["--weight-memory"] = true,
    };

    private sealed record Best(string Engine, string Model, string Format, long DecodeBytes)
    {
        public double PrefillTps { get; set; }
        public double DecodeTps { get; set; }
    }

    public static int Run(Args args)
    {
        var models = args.All("--model");
        if (models.Count == 0)
            throw new ArgsException("option '--model' is required");
        int threads = args.Int("--threads", 2), prompt = args.Int("--prompt", 128), gen = args.Int("--gen", 64);
        int rounds = args.Int("--rounds", 3), bwMb = args.Int("--bw-mb", 1024);
        var quants = args.All("--quant");
        string? exe = args.String("--llama-bin") is { } bin ? Path.Combine(bin, "llama-bench") : null;
        var ggufs = args.All("--gguf");
        // Each --weight-memory (auto, mapped, huge-pages) loads the models again, so the modes run side by side.
        var memories = args.All("--weight-memory").Select(m => m switch
        {
            "auto" => WeightMemory.Auto,
            "mapped" => WeightMemory.Mapped,
            "huge-pages" => WeightMemory.HugePages,
            _ => throw new ArgsException($"--weight-memory {m}: expected auto, mapped or huge-pages"),
        }).ToList();
        if (memories.Count == 0)
            memories.Add(WeightMemory.Auto);

        // Every (model, format) pair: the model as stored ("none"), then each --quant applied at load.
        var lowbit = new List<(LanguageModel Model, Best Best)>();
        try
        {
            foreach (string dir in models)
            {
                foreach (var (quant, memory) in (quants.Count == 0 ? [null] : quants.Select(q => q == "none" ? null : q)).SelectMany(q => memories.Select(m => (q, m))))
                {
                    var options = new ModelLoadOptions
                    {
                        WeightMemory = memory,
                        Threads = threads,
                        MaxSequenceLength = Math.Max(prompt, gen) + 1,
                        // "NAME+head" quantizes the output head too (the default filter leaves it dense).
                        Quantization = quant is null ? null : QuantConfigs.Parse(quant.EndsWith("+head", StringComparison.Ordinal) ? quant[..^5] : quant),
                        QuantizationFilter = quant?.EndsWith("+head", StringComparison.Ordinal) == true ? static (_, _) => true : null,
                    };
                    var model = LanguageModel.Load(dir, options);
                    string format = string.Join("+", model.Weights.Linears().Select(l => l.Weight.FormatName).Distinct())
                        + (memories.Count > 1 ? $" ({memory})" : "");
                    lowbit.Add((model, new Best("lowbit", Path.GetFileName(Path.TrimEndingDirectorySeparator(dir)), format, model.Weights.DecodeBytes)));
                }
            }

            var llama = ggufs.Select(g => new Best("llama.cpp", Path.GetFileNameWithoutExtension(g), "", 0)).ToList();
            double roofline = 0;
            for (int round = 1; round <= rounds; round++)
            {
                var bw = MemoryBandwidth.Measure(threads, bwMb, 3);
                roofline = Math.Max(roofline, bw.BestGBps);
                Console.Error.WriteLine($"round {round}/{rounds}: {bw}");
                foreach (var (model, best) in lowbit)
                {
                    var speed = SpeedBenchmark.Measure(model, prompt, gen, 1);
                    best.PrefillTps = Math.Max(best.PrefillTps, speed.PrefillTokensPerSecond);
                    best.DecodeTps = Math.Max(best.DecodeTps, speed.DecodeTokensPerSecond);
                }
                for (int i = 0; exe is not null && i < ggufs.Count; i++)
                {
                    var rows = LlamaCppCommand.Bench(exe, ggufs[i], threads, prompt, gen, 1);
                    var pp = rows.First(r => r.Test.StartsWith("pp", StringComparison.Ordinal));
                    var tg = rows.First(r => r.Test.StartsWith("tg", StringComparison.Ordinal));
                    llama[i] = llama[i] with { Format = pp.Type, DecodeBytes = pp.SizeBytes };
                    llama[i].PrefillTps = Math.Max(llama[i].PrefillTps, pp.TokensPerSecond);
                    llama[i].DecodeTps = Math.Max(llama[i].DecodeTps, tg.TokensPerSecond);
                }
            }

            Print(threads, prompt, gen, rounds, roofline, [.. lowbit.Select(l => l.Best), .. llama]);
            return 0;
        }
        finally
        {
            foreach (var (model, _) in lowbit)
                model.Dispose();
        }
    }

    private static void Print(int threads, int prompt, int gen, int rounds, double roofline, IReadOnlyList<Best> rows)
    {
        Console.WriteLine();
        Console.WriteLine($"{threads} threads, prefill {prompt} tokens, decode {gen} tokens, best of {rounds} rounds; " +
            $"roofline = best read bandwidth of the run, {roofline:F1} GB/s");
        Console.WriteLine("| engine | model | weights | bytes/token (MB) | prefill tok/s | decode tok/s | decode GB/s | % of bandwidth | roofline tok/s |");
        Console.WriteLine("|---|---|---|---:|---:|---:|---:|---:|---:|");
        foreach (var r in rows)
        {
            double gbps = r.DecodeBytes * r.DecodeTps / 1e9;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"| {r.Engine} | {r.Model} | {r.Format} | {r.DecodeBytes / 1e6:F1} | {r.PrefillTps:F1} | {r.DecodeTps:F2} | {gbps:F1} | {100 * gbps / roofline:F0}% | {roofline * 1e9 / r.DecodeBytes:F1} |"));
        }
    }
}
