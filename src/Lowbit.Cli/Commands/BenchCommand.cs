using System.CommandLine;
using System.Diagnostics;
using Lowbit.Cuda;
using Lowbit.Evaluation;
using Lowbit.Models;

namespace Lowbit.Cli.Commands;

/// <summary>
/// <c>lowbit bench</c>: the table torchao's README prints, one row per format: decode and prefill tok/s,
/// weight bytes, memory, effective GB/s against the read bandwidth measured in the same run, and with
/// --text the perplexity and the KL divergence from the unquantized model.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CommonOptions.Model();
        var quant = new Option<string>("--quant") { Description = "Comma-separated formats; \"none\" is the model as stored.", DefaultValueFactory = _ => "none,int8wo,int4wo-64" };
        var text = new Option<FileInfo?>("--text") { Description = "Text for perplexity and KL divergence (as lowbit eval)." };
        var ctx = new Option<int>("--ctx", "-c") { Description = "Window length for --text.", DefaultValueFactory = _ => 512 };
        var chunks = new Option<int?>("--chunks") { Description = "Score at most this many windows of --text (llama-perplexity's --chunks)." };
        var prompt = new Option<int>("--prompt") { Description = "Prefill length in tokens.", DefaultValueFactory = _ => 128 };
        var gen = new Option<int>("--gen") { Description = "Decode length in tokens.", DefaultValueFactory = _ => 64 };
        var reps = new Option<int>("--reps") { Description = "Repetitions; the best is kept.", DefaultValueFactory = _ => 3 };
        var bandwidthMb = new Option<int>("--bandwidth-mb") { Description = "Buffer for the read-bandwidth measurement (well above the L3 cache).", DefaultValueFactory = _ => 1024 };
        var threads = CommonOptions.Threads();
        var device = CommonOptions.Device();
        var shape = new Option<string?>("--shape")
        {
            Description = $"Instead of --model, a random-weight model of this shape built on the GPU ({string.Join(", ", SyntheticModel.Shapes)}); needs --device cuda.",
        };
        var prompts = new Option<string>("--prompts") { Description = "With --shape: comma-separated prefill lengths.", DefaultValueFactory = _ => "512,2048" };
        var eager = new Option<bool>("--eager") { Description = "With --shape: launch every kernel of a decode step instead of replaying a CUDA graph." };
        var profile = new Option<bool>("--profile") { Description = "With --shape: also print the GPU time of each operation of a decode step." };
        var whatIf = new Option<string?>("--what-if")
        {
            Description = "With --shape: also time decode with these operations left out, one at a time (norms, rope, attention, or a+b): what each would gain at zero cost.",
        };
        var gemmTile = new Option<string?>("--gemm-tile")
        {
            Description = "With --shape: the prefill GEMM's tiling for every product (a name as selftest --bench prints it) instead of the one chosen by rows and GPU.",
        };
        var kvCache = CommonOptions.KvCache();
        var context = new Option<int>("--context") { Description = "With --shape: decode from this position (attention over that many cached positions).", DefaultValueFactory = _ => 0 };
        var sampling = CommonOptions.Sampling(); // decode is greedy unless --temperature is given
        var command = new Command("bench", "Speed, size and accuracy of a model in each quantized format, side by side.")
        {
            model, quant, text, ctx, chunks, prompt, gen, reps, bandwidthMb, threads, device, kvCache, shape, prompts, context, eager, profile, whatIf, gemmTile,
        };
        foreach (var option in sampling.All)
            command.Options.Add(option);
        command.SetAction(r => CommonOptions.Run(() =>
        {
            var picking = sampling.Parse(r);
            if (r.GetValue(shape) is { } shapeName)
            {
                SyntheticModel.Shape(shapeName); // a bad name fails before the GPU opens
                using var backend = CommonOptions.OpenDevice(r.GetValue(device));
                if (backend is not CudaBackend cuda)
                    throw new ArgumentException("--shape builds its model on the GPU: use --device cuda (or auto on a machine with one).");
                cuda.RecordSteps = !r.GetValue(eager);
                if (r.GetValue(gemmTile) is { } tileName)
                {
                    cuda.TensorCoreTile = Lowbit.Cuda.Ptx.GemmTile.Candidates.FirstOrDefault(t => t.Name == tileName)
                        ?? throw new ArgumentException($"--gemm-tile: no tiling {tileName}; one of {string.Join(", ", Lowbit.Cuda.Ptx.GemmTile.Candidates.Select(t => t.Name))}.");
                }
                string[] shapeFormats = r.GetResult(quant) is null ? ["bf16"] : r.GetValue(quant)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                int[] lengths = [.. r.GetValue(prompts)!.Split(',', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse)];
                DecodeOps[] whatIfs = [.. (r.GetValue(whatIf) ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .Select(o => Enum.Parse<DecodeOps>(o.Replace('+', ','), ignoreCase: true))];
                if (r.GetValue(context) < 0)
                    throw new ArgumentException($"--context must be 0 or more; got {r.GetValue(context)}.");
                return ShapeBench.Run(cuda, shapeName, shapeFormats, r.GetValue(gen), Math.Max(1, r.GetValue(reps)), lengths, r.GetValue(profile), whatIfs,
                    CommonOptions.ParseKvCache(r.GetValue(kvCache)) ?? cuda.PreferredKvCacheType, r.GetValue(context), picking);
            }
            string dir = r.GetValue(model) ?? CommonOptions.BundledModel;
            string cacheName = r.GetValue(kvCache)!;
            _ = CommonOptions.ParseKvCache(cacheName);
            string[] formats = r.GetValue(quant)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            foreach (string f in formats)
                _ = CommonOptions.ParseQuant(f); // fail on a bad name before any work
            int p = r.GetValue(prompt), g = r.GetValue(gen), n = Math.Max(1, r.GetValue(reps)), contextLength = r.GetValue(ctx);
            if (p < 1 || g < 1)
                throw new ArgumentException("--prompt and --gen must be at least 1.");
            int threadCount = r.GetValue(threads) ?? Environment.ProcessorCount;
            var textFile = r.GetValue(text);
            if (textFile is { Exists: false })
                throw new FileNotFoundException($"Text file {textFile.FullName} does not exist.");

            var before = MemoryBandwidth.Measure(threadCount, r.GetValue(bandwidthMb), 3);
            Console.Error.WriteLine($"before: {before}");
            using var reference = textFile is null ? null : LanguageModel.Load(dir, CommonOptions.LoadOptions(threadCount, Math.Max(contextLength, p + g)));
            int[]? tokens = reference is null ? null : Perplexity.TokenizeFile(reference, textFile!.FullName);

            var rows = new List<(string Format, long Bytes, double Decode, double Prefill, long Rss, string Ppl, string Kld, string Top)>();
            foreach (string format in formats)
            {
                Console.Error.WriteLine($"{format}: loading");
                using var lm = LanguageModel.Load(dir, CommonOptions.LoadOptions(threadCount, Math.Max(contextLength, p + g), format, r.GetValue(device), cacheName));
                var speed = SpeedBenchmark.Measure(lm, p, g, n, picking);
                long rss = Process.GetCurrentProcess().WorkingSet64;
                string ppl = "", kld = "", top = "";
                if (reference is not null)
                {
                    Console.Error.WriteLine($"{format}: perplexity");
                    var q = QualityComparison.Evaluate(reference, lm, tokens!, contextLength, maxChunks: r.GetValue(chunks));
                    ppl = $"{q.Candidate.Perplexity:F4} ± {q.Candidate.StandardError:F4}";
                    kld = format == "none" ? "0" : $"{q.MeanKlDivergence:F6} ± {q.KlDivergenceError:F6}";
                    top = $"{100 * q.SameTopTokenFraction:F2}%";
                }
                string label = format == "none" ? string.Join("+", lm.Weights.Linears().Select(l => l.Weight.FormatName).Distinct()) : format;
                rows.Add((label, lm.Weights.DecodeBytes, speed.DecodeTokensPerSecond, speed.PrefillTokensPerSecond, rss, ppl, kld, top));
                if (lm.QuantizationReport is { } report)
                    Console.Error.WriteLine(report.Summary());
            }
            var after = MemoryBandwidth.Measure(threadCount, r.GetValue(bandwidthMb), 3);
            Console.Error.WriteLine($"after:  {after}");
            double roofline = Math.Max(before.BestGBps, after.BestGBps);
            // A markdown table: readable in a terminal, pasted as is into docs.
            Console.WriteLine("| format | weights (MB) | decode tok/s | prefill tok/s | GB/s | % of bandwidth | RSS (MB) | PPL | KLD | same top |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
            foreach (var row in rows)
            {
                double gbps = row.Bytes * row.Decode / 1e9;
                Console.WriteLine($"| {row.Format} | {row.Bytes / 1e6:F1} | {row.Decode:F2} | {row.Prefill:F1} | {gbps:F1} | {100 * gbps / roofline:F0}% | " +
                    $"{row.Rss / 1e6:F0} | {row.Ppl} | {row.Kld} | {row.Top} |");
            }
            Console.WriteLine($"{dir}: {threadCount} threads, prefill {p} tokens, decode {g} tokens ({CommonOptions.DescribeSampling(picking)}), best of {n}; " +
                $"bandwidth {roofline:F1} GB/s (best read of the run){(textFile is null ? "" : $"; PPL and KLD on {textFile.Name} at ctx {contextLength}")}");
            return 0;
        }));
        return command;
    }
}
