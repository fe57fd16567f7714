using System.CommandLine;
using Lowbit.Backends.Cpu;
using Lowbit.Cuda;
using Lowbit.Cuda.Ptx;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Quantization.Configs;
using Lowbit.Tensors;

namespace Lowbit.Cli.Commands;

/// <summary><c>lowbit selftest --device cuda</c>: every kernel of a device backend against the CPU backend on
/// random data at odd shapes, then greedy decoding of a model on both; <c>--bench</c> adds timings.</summary>
internal static class SelfTestCommand
{
    public static Command Create()
    {
        var device = new Option<string>("--device") { Description = "The backend to check: cuda.", DefaultValueFactory = _ => "cuda" };
        var model = CommonOptions.Model();
        var tokens = new Option<int>("--tokens") { Description = "Tokens to decode greedily on both backends.", DefaultValueFactory = _ => 80 };
        var bench = new Option<bool>("--bench") { Description = "Also time the decode GEMVs of every format with a CUDA kernel (14336x4096, 4096x14336) and the model's decode." };
        var gemmOnly = new Option<bool>("--gemm-only") { Description = "Only the prefill GEMM: check every tensor-core tiling this GPU runs (and time them with --bench)." };
        var command = new Command("selftest", "Check a device backend against the CPU: each kernel, then greedy decoding (dense and each quantized format with device kernels).") { device, model, tokens, bench, gemmOnly };
        command.SetAction(r => CommonOptions.Run(() =>
        {
            string modelDir = r.GetValue(model) ?? CommonOptions.BundledModel;
            int failures = 0;
            using (var gpu = CommonOptions.OpenDevice(r.GetValue(device)) ?? throw new ArgumentException("--device: selftest checks a device backend (cuda)."))
            using (var cpu = new CpuBackend(Environment.ProcessorCount))
            {
                Console.WriteLine($"{gpu.Name} against {cpu.Name}");
                void Report(IEnumerable<CheckResult> results)
                {
                    foreach (var result in results)
                    {
                        Console.WriteLine(result);
                        failures += result.Passed ? 0 : 1;
                    }
                }
                var cuda = gpu as CudaBackend;
                // Tensor-core tilings first, simplest first, each printed as it comes: PTX of ours is the likeliest to fault.
                if (cuda is { HasTensorCores: true })
                    Report(BackendCheck.TensorCores(cuda, cpu));
                if (r.GetValue(gemmOnly))
                {
                    if (cuda is { HasTensorCores: true })
                    {
                        // The prefill attention on tensor cores against the CPU (the other kernels' checks are skipped).
                        Report(BackendCheck.Attention(gpu, cpu));
                        if (cuda.AttentionTensorCoreError is string attentionError)
                        {
                            Console.WriteLine($"FAIL prefill attention fell back to the ILGPU kernel: {attentionError}");
                            failures++;
                        }
                    }
                    if (cuda is { HasTensorCores: true } && r.GetValue(bench))
                    {
                        BenchGemm(cuda);
                        BenchPrefillAttention(cuda);
                    }
                    Console.WriteLine(failures == 0 ? "selftest passed (GEMM only)" : $"selftest FAILED: {failures} checks");
                    return failures == 0 ? 0 : 1;
                }
                Report(BackendCheck.Kernels(gpu, cpu, large: true));
                if (cuda?.TensorCoreError is string error)
                {
                    Console.WriteLine($"FAIL prefill linear fell back to the ILGPU GEMM: {error}");
                    failures++;
                }
                if (cuda?.Int4TensorCoreError is string int4Error)
                {
                    Console.WriteLine($"FAIL int4 GEMVs fell back to the ILGPU kernel: {int4Error}");
                    failures++;
                }
                if (cuda?.Int8TensorCoreError is string int8Error)
                {
                    Console.WriteLine($"FAIL int8dq prefill fell back to the bf16 tensor cores: {int8Error}");
                    failures++;
                }
                if (r.GetValue(bench) && cuda is not null)
                {
                    foreach (var (n, k) in new[] { (14336, 4096), (4096, 14336), (4096, 4096), (1024, 4096) })
                    {
                        foreach (string format in CudaBackend.BenchFormats)
                        {
                            var (us, bytes, resources) = cuda.TimeGemv(format, n, k);
                            Console.WriteLine($"bench gemv {format,-10} {n}x{k}: {us,6:F1} us, {bytes / us / 1e3,5:F0} GB/s ({bytes / us / 1e3 / 2970,4:P0} of 2.97 TB/s) {resources}");
                        }
                    }
                    // The row split each GEMV chooses against the others: warps sharing a row (dense) or a four-row set.
                    foreach (var (n, k) in new[] { (14336, 4096), (4096, 14336), (6144, 4096), (4096, 4096) })
                    {
                        foreach (string format in new[] { "bf16", "int8wo", "int4wo-64" })
                        {
                            var line = new System.Text.StringBuilder($"bench gemv split {format,-10} {n}x{k}:");
                            foreach (int split in new[] { 0, 1, 2, 4 })
                            {
                                cuda.GemvSplit = split;
                                var (us, bytes, _) = cuda.TimeGemv(format, n, k);
                                line.Append($"  {(split == 0 ? "auto" : $"{split} warps")} {us:F1} us {bytes / us / 1e3:F0} GB/s");
                            }
                            cuda.GemvSplit = 0;
                            Console.WriteLine(line);
                        }
                    }
                    // The int4 tensor-core GEMV's warps a row set against each other and against the ILGPU kernel.
                    if (cuda.HasTensorCores)
                    {
                        foreach (var (n, k) in new[] { (14336, 4096), (4096, 14336), (6144, 4096), (4096, 4096), (1024, 4096) })
                        {
                            var line = new System.Text.StringBuilder($"bench gemv int4wo-64 {n}x{k} tensor cores:");
                            foreach (int stages in new[] { 2, 3, 4 })
                            {
                                cuda.Int4TensorCoreStages = stages;
                                line.Append($"  [{stages} stages, {cuda.TimeGemv("int4wo-64", n, k).Resources}]");
                                foreach (int split in new[] { 0, 2, 4, 8, 16 })
                                {
                                    cuda.Int4TensorCoreSplit = split;
                                    var (us, bytes, _) = cuda.TimeGemv("int4wo-64", n, k);
                                    line.Append($" {(split == 0 ? "auto" : $"{split}w")} {us:F1} us {bytes / us / 1e3:F0} GB/s");
                                }
                            }
                            cuda.Int4TensorCoreStages = Int4MmaGemv.DefaultStages;
                            cuda.Int4TensorCoreSplit = 0;
                            cuda.Int4TensorCoreGemv = false;
                            var (simt, simtBytes, _) = cuda.TimeGemv("int4wo-64", n, k);
                            cuda.Int4TensorCoreGemv = true;
                            Console.WriteLine(line.Append($"  | ILGPU {simt:F1} us {simtBytes / simt / 1e3:F0} GB/s"));
                        }
                    }
                    Console.WriteLine($"bench sampling 128256 logits (launch, copy back, wait): argmax {cuda.TimeSample(128256, 0f, 0, 1f):F1} us, " +
                        $"T=1 {cuda.TimeSample(128256, 1f, 0, 1f):F1} us, top-k 40 {cuda.TimeSample(128256, 0.8f, 40, 1f):F1} us, " +
                        $"top-p 0.9 {cuda.TimeSample(128256, 0.7f, 0, 0.9f):F1} us, top-k 50 top-p 0.8 {cuda.TimeSample(128256, 1.2f, 50, 0.8f):F1} us");
                    var (norm, gemv, producer, consumer) = cuda.TimeNormFold();
                    Console.WriteLine($"bench norm fold in a graph (dim 4096, bf16 4096x4096): rmsnorm {norm:F1} us, gemv {gemv:F1} us, " +
                        $"gemv adding into the residual {producer:F1} us, gemv reading the normed row {consumer:F1} us");
                    // Decode attention at a few positions against the groups a kv head may use (1: no merge).
                    foreach (int position in new[] { 16, 64, 128, 512, 2048, 8000 })
                    {
                        var line = new System.Text.StringBuilder($"bench attention decode at {position,4}:");
                        foreach (int blocks in new[] { 0, 1, 2, 4, 8, 16, 33, 64 })
                            line.Append($"  {(blocks == 0 ? "auto" : $"{blocks}")} {cuda.TimeAttention(position, 8192, blocks):F1} us");
                        Console.WriteLine(line.Append($"  | bf16 cache, auto {cuda.TimeAttention(position, 8192, 0, DType.BF16):F1} us"));
                    }
                    if (cuda.HasTensorCores)
                    {
                        BenchGemm(cuda);
                        BenchPrefillAttention(cuda);
                    }
                }
            }

            // The checkpoint as it is, then quantized with each format that has CUDA kernels, then as it is with a BF16
            // KV cache on both backends.
            int steps = r.GetValue(tokens);
            foreach (var (quant, cache) in new (string?, DType)[] { (null, DType.F32), ("int8wo", DType.F32), ("int8dq", DType.F32), ("fp8wo", DType.F32), ("int4wo-32", DType.F32), (null, DType.BF16) })
            {
                var config = quant is null ? null : QuantConfigs.Parse(quant);
                using var reference = LanguageModel.Load(modelDir, new ModelLoadOptions { Threads = Environment.ProcessorCount, Quantization = config, KvCacheType = cache });
                using var onDevice = LanguageModel.Load(modelDir, new ModelLoadOptions { Device = CommonOptions.OpenDevice(r.GetValue(device)), Quantization = config, KvCacheType = cache });
                string label = (quant is null ? "" : $" ({quant})") + (cache == DType.F32 ? "" : $" ({cache} KV cache)");
                var (expected, actual) = BackendCheck.GreedyDecode(reference, onDevice, "Once upon a time", steps);
                int diverge = Enumerable.Range(0, steps).FirstOrDefault(i => expected[i] != actual[i], -1);
                // int8dq rounds every activation to a code: the last-bit differences of f32 sums taken in another
                // order (attention, norms) can move a code by one, and a greedy run then forks at a near tie. Its
                // kernels are exact (BackendCheck); the run must agree for the first 32 tokens.
                int required = quant == "int8dq" ? Math.Min(32, steps) : steps;
                bool agreed = diverge < 0 || diverge >= required;
                Console.WriteLine(diverge < 0
                    ? $"ok   greedy decode{label} {steps} tokens after the prompt: identical ids"
                    : $"{(agreed ? "ok  " : "FAIL")} greedy decode{label}: first difference at token {diverge} of {steps} (cpu {expected[diverge]}, device {actual[diverge]}; {required} must agree)");
                failures += agreed ? 0 : 1;
                Console.WriteLine($"     {onDevice.Tokenizer.Decode(actual).ReplaceLineEndings(" ")}");

                if (r.GetValue(bench) && quant is null && cache == DType.F32)
                {
                    foreach (var lm in new[] { reference, onDevice })
                    {
                        using var generator = new Generator(lm);
                        var options = new GenerationOptions { MaxTokens = 256, Sampling = new SamplingOptions(0f, 0, 1f, null) };
                        foreach (var _ in generator.GenerateAsync("Once upon a time", options).ToBlockingEnumerable())
                        {
                        }
                        var s = generator.LastStats!;
                        Console.WriteLine($"bench decode {s.GeneratedTokens} tokens on {lm.Backend.Name}: {s.DecodeTokensPerSecond:F1} tok/s, prefill {s.PrefillTokensPerSecond:F1} tok/s");
                    }
                }
            }
            Console.WriteLine(failures == 0 ? "selftest passed" : $"selftest FAILED: {failures} checks");
            return failures == 0 ? 0 : 1;
        }));
        return command;
    }

    /// <summary>Prefill attention at Llama-3-8B's heads, tensor cores against the ILGPU flash kernel.</summary>
    private static void BenchPrefillAttention(CudaBackend cuda)
    {
        foreach (int rows in new[] { 512, 2048, 8192 })
        {
            var line = new System.Text.StringBuilder($"bench prefill attention {rows} rows (32/8 heads, D 128):");
            foreach (int warps in new[] { 4, 8 })
            {
                cuda.AttentionWarps = warps;
                var (us, flops) = cuda.TimePrefillAttention(rows, tensorCores: true);
                line.Append($" tensor cores, {warps} warps {us:F1} us ({flops:F1} TFLOP/s);");
            }
            cuda.AttentionWarps = Lowbit.Cuda.Ptx.FlashAttentionPtx.DefaultWarps;
            var (simt, simtFlops) = cuda.TimePrefillAttention(rows, tensorCores: false);
            var (bf16, bf16Flops) = cuda.TimePrefillAttention(rows, tensorCores: true, DType.BF16);
            Console.WriteLine(line.Append($" ILGPU flash {simt:F1} us ({simtFlops:F1} TFLOP/s); tensor cores, bf16 cache {bf16:F1} us ({bf16Flops:F1} TFLOP/s)"));
        }
    }

    /// <summary>TFLOP/s of the prefill GEMM (bf16 w) on tensor cores with every candidate tiling, at Llama-3-8B
    /// shapes, and of the ILGPU GEMM at one shape (cuBLAS on an H100: 791 TFLOP/s, ILGPU-NOTES.md).</summary>
    private static void BenchGemm(CudaBackend cuda)
    {
        var runs = GemmTile.Candidates.Where(cuda.Runs).ToList();
        foreach (var tile in runs)
        {
            try
            {
                Console.WriteLine($"bench tensor cores {tile.Name}: {cuda.TensorCoreGemmFor(tile).Describe()}");
            }
            catch (InvalidOperationException e)
            {
                Console.WriteLine($"bench tensor cores {tile.Name}: did not load: {e.Message}");
            }
        }
        foreach (var (n, k) in new[] { (4096, 4096), (1024, 4096), (14336, 4096), (4096, 14336) })
        {
            foreach (int m in new[] { 512, 2048 })
            {
                var tiles = new List<GemmTile?>(runs);
                if (m == 512 && n == 4096 && k == 4096)
                    tiles.Add(null);
                foreach (var (tile, us, gemmUs, int8Us, error) in cuda.TimeGemm(m, n, k, tiles))
                {
                    string name = tile is null ? "ilgpu 16x16 tiles (no tensor cores)" : $"tensor cores {tile.Name}";
                    Console.WriteLine(error is not null
                        ? $"bench gemm m={m} n={n} k={k} {name}: did not load"
                        : $"bench gemm m={m} n={n} k={k} {name,-40} {us,9:F1} us {2.0 * m * n * k / us / 1e6,6:F1} TFLOP/s"
                          + $" (GEMM kernel alone {gemmUs:F1} us, {2.0 * m * n * k / gemmUs / 1e6:F1} TFLOP/s)"
                          + (double.IsNaN(int8Us) ? "" : $" | int8 {int8Us:F1} us {2.0 * m * n * k / int8Us / 1e6:F1} TOP/s"));
                }
            }
        }
    }
}
