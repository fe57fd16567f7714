using Lowbit.Backends;
using Lowbit.Cuda.Ptx;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Quantization;
using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>One comparison of a backend against the reference: the largest difference relative to the
/// reference's largest magnitude, and the bound it must stay under.</summary>
public sealed record CheckResult(string Name, double Error, double Tolerance)
{
    public bool Passed => Error <= Tolerance && !double.IsNaN(Error);

    public override string ToString() => $"{(Passed ? "ok  " : "FAIL")} {Name,-44} error {Error:E2} (bound {Tolerance:E0})";
}

/// <summary>
/// Checks a backend against another (the CPU backend as reference) op by op on random data at odd shapes,
/// and end to end by greedy decoding. One body for every backend: the tests run it with CUDA on ILGPU's
/// CPU accelerator here and `lowbit selftest --device cuda` runs it on the GPU.
/// </summary>
public static class BackendCheck
{
    /// <summary>Every IBackend operation at odd shapes (rows not a multiple of 8 or 32, K not a multiple of the
    /// vector width, one row and several); <paramref name="large"/> adds decode-sized GEMVs (slow off a GPU).</summary>
    public static List<CheckResult> Kernels(IBackend device, IBackend reference, bool large, int seed = 1)
    {
        var rng = new Random(seed);
        var host = new List<Tensor>();
        var weights = new List<IWeight>();
        var results = new List<CheckResult>();
        try
        {
            void Check(string name, double tolerance, Func<IBackend, float[]> op) => results.Add(Compare(device, reference, name, tolerance, op));

            foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
            {
                var table = HostTensor(host, dtype, 37, 67, Values(rng, 37 * 67));
                int[] tokens = [3, 0, 36, 3, 17];
                Check($"embedding {dtype} [37, 67], 5 tokens", 0, b => Run(b, tokens.Length, 67, (b, y) => b.Embedding(table, tokens, y)));
            }

            // The GEMV's two ways (a warp a row, a row over the group's warps) at every shape.
            var cuda = device as CudaBackend;
            foreach (var (m, n, k) in LinearShapes(large))
            {
                foreach (var dtype in new[] { DType.F32, DType.BF16, DType.F16 })
                {
                    var w = new DenseWeight(HostTensor(host, dtype, n, k, Values(rng, n * k)));
                    var x = Values(rng, m * k);
                    foreach (bool rowsSplit in m == 1 && cuda is not null ? new[] { false, true } : [false])
                    {
                        if (cuda is not null)
                            cuda.GemvSplit = rowsSplit ? 4 : 0;
                        // bf16 weights with m > 1 run on tensor cores on a GPU, which round x to bf16 first.
                        Check($"linear {dtype} m={m} n={n} k={k}{(rowsSplit ? ", rows split" : "")}",
                            dtype == DType.BF16 && m > 1 ? Bf16ActivationTolerance : 2e-5 * Math.Sqrt(k),
                            b => Run(b, m, n, (b, y) => b.Linear(Put(b, host, x, m, k), w, y)));
                    }
                }
            }

            // q, k, v in one launch and gate·up with SiLU in one launch (m = 1), and their fallbacks (m = 3).
            foreach (var (m, k) in new[] { (1, 264), (3, 40) })
            {
                foreach (var dtype in new[] { DType.F32, DType.BF16 })
                {
                    var ws = new[] { 29, 13, 13 }.Select(n => new DenseWeight(HostTensor(host, dtype, n, k, Values(rng, n * k)))).ToArray();
                    var x = Values(rng, m * k);
                    foreach (bool rowsSplit in m == 1 && cuda is not null ? new[] { false, true } : [false])
                    {
                        if (cuda is not null)
                            cuda.GemvSplit = rowsSplit ? 4 : 0;
                        string how = $"{dtype} m={m} k={k}{(rowsSplit ? ", rows split" : "")}";
                        CheckFused(how, ws, x, m, k, dtype == DType.BF16 && m > 1 ? Bf16ActivationTolerance : 2e-5 * Math.Sqrt(k));
                    }
                }
            }
            if (cuda is not null)
                cuda.GemvSplit = 0;

            // The quantized formats' fused launches (int8dq: its codes made once for all the weights), K split over warps at 4096.
            foreach (var (format, k) in new[] { ("int8wo", 67), ("fp8wo", 4096), ("int8dq", 256), ("int4wo-64", 256), ("int4wo-32", 4096) })
            {
                var ws = new[] { 29, 13, 13 }.Select(n => Quantizer.QuantizeWeight(QuantConfigs.Parse(format), HostTensor(host, DType.BF16, n, k, Values(rng, n * k)))).ToArray();
                weights.AddRange(ws);
                foreach (int m in new[] { 1, 3 })
                    CheckFused($"{format} m={m} k={k}", ws, Values(rng, m * k), m, k, QuantizedTolerance(m, k, format));
            }

            // Prefill-sized, on a GPU (slow on ILGPU's CPU accelerator, whose kernels these shapes add nothing to): several
            // tensor-core blocks a product, every edge cut (the gated product's gate and up halves of a block included).
            foreach (string format in cuda is { HasTensorCores: true } ? new[] { "bf16", "int4wo-64", "int8dq" } : [])
            {
                const int m = 130, k = 320;
                var ws = new[] { 300, 200, 200 }.Select(n => HostTensor(host, DType.BF16, n, k, Values(rng, n * k)))
                    .Select(t => format == "bf16" ? (IWeight)new DenseWeight(t) : Quantizer.QuantizeWeight(QuantConfigs.Parse(format), t)).ToArray();
                weights.AddRange(ws.Where(w => w is not DenseWeight));
                CheckFused($"{format} m={m} k={k}", ws, Values(rng, m * k), m, k, QuantizedTolerance(m, k, format));
            }

            // On a GPU, prefill (m > 1) of a quantized weight runs on tensor cores with x and the weight rounded to
            // bf16 (K a multiple of 8); elsewhere the f32 kernels answer to the tight bound, and so does int8dq on int8
            // tensor cores (K a multiple of 16: the exact integer dot).
            double QuantizedTolerance(int m, int k, string format = "") =>
                cuda is { HasTensorCores: true } && m > 1 && k % 8 == 0 && !(format == "int8dq" && k % 16 == 0) ? Bf16ActivationTolerance : 2e-5 * Math.Sqrt(k);

            // q, k, v (29, 13, 13 rows: not multiples of a GEMV warp's 4) through the three-weight Linear, and
            // gate·up through GatedLinear, against the CPU's one-by-one composition.
            void CheckFused(string how, IWeight[] ws, float[] x, int m, int k, double tolerance)
            {
                for (int i = 0; i < 3; i++)
                {
                    int output = i;
                    Check($"linear q/k/v [{string.Join(", ", ws.Select(w => w.OutFeatures))}] output {i} {how}", tolerance, b => Run(b, m, ws[output].OutFeatures, (b, y) =>
                    {
                        var buffers = ws.Select(w => b.Allocate(DType.F32, m, w.OutFeatures)).ToArray();
                        host.AddRange(buffers);
                        TensorView[] outputs = [.. buffers.Select(t => t.View())];
                        outputs[output] = y;
                        b.Linear(Put(b, host, x, m, k), [ws[0], ws[1], ws[2]], outputs);
                    }));
                }
                int gated = ws[1].OutFeatures;
                Check($"gated linear [{gated}] {how}", tolerance, b => Run(b, m, gated, (b, y) =>
                {
                    using var scratch = b.Allocate(DType.F32, m, gated);
                    b.GatedLinear(Put(b, host, x, m, k), ws[1], ws[2], y, scratch.View());
                }));
            }

            foreach (var (format, m, n, k, skip) in QuantizedLinearShapes(large))
            {
                var dense = HostTensor(host, DType.BF16, n, k, Values(rng, n * k));
                var w = Quantizer.QuantizeWeight(QuantConfigs.Parse(format), dense);
                weights.Add(w);
                var x = Values(rng, (skip + m) * k);
                Check($"linear {format} m={m} n={n} k={k}{(skip > 0 ? $", x after {skip} row" : "")}", QuantizedTolerance(m, k, format),
                    b => Run(b, m, n, (b, y) => b.Linear(Put(b, host, x, skip + m, k).Slice(skip, m), w, y)));
            }

            // The int4 tensor-core GEMV with K split unevenly over 1, 3 and 7 warps (9 blocks of 128) at each pipeline
            // depth, for every group size, and the ILGPU kernel it replaces at the same shape.
            if (cuda is { HasTensorCores: true })
            {
                foreach (int group in new[] { 32, 64, 128, 256 })
                {
                    int k = group == 256 ? 1280 : 1152;
                    var w = Quantizer.QuantizeWeight(QuantConfigs.Parse($"int4wo-{group}"), HostTensor(host, DType.BF16, 45, k, Values(rng, 45 * k)));
                    weights.Add(w);
                    var x = Values(rng, k);
                    foreach (var (split, stages) in new[] { (1, 2), (3, 3), (7, 4), (3, 2), (1, 4), (0, 0) })
                    {
                        cuda.Int4TensorCoreSplit = split;
                        cuda.Int4TensorCoreStages = Math.Max(stages, 2);
                        cuda.Int4TensorCoreGemv = stages > 0;
                        string how = stages > 0 ? $"tensor cores over {split} warps, {stages} stages" : "ILGPU kernel";
                        Check($"linear int4wo-{group} m=1 n=45 k={k}, {how}", 2e-5 * Math.Sqrt(k),
                            b => Run(b, 1, 45, (b, y) => b.Linear(Put(b, host, x, 1, k), w, y)));
                    }
                }
                cuda.Int4TensorCoreSplit = 0;
                cuda.Int4TensorCoreStages = Int4MmaGemv.DefaultStages;
                cuda.Int4TensorCoreGemv = true;
            }

            {
                var x = Values(rng, 3 * 301);
                var weight = HostTensor(host, DType.F32, 1, 301, Values(rng, 301));
                Check("rmsnorm [3, 301]", 1e-5, b => Run(b, 3, 301, (b, y) => b.RmsNorm(Put(b, host, x, 3, 301), weight, 1e-5f, y)));
                var bias = HostTensor(host, DType.F32, 1, 301, Values(rng, 301));
                Check("add bias [3, 301]", 1e-6, b => Get(b, Apply(b, host, x, 3, 301, v => b.AddBias(v, bias))));
            }

            // residual += x·Wᵀ and normed = RMSNorm(residual)·g: the decode GEMVs add into the residual and leave 1/rms
            // to the reader (here the host: the row is scaled first; many groups at 301 and 6148 rows), prefill (m = 3)
            // composes the GEMM and the norm kernel (scalar at 301 columns, vectors at 256, past two vectors a thread
            // at 6148).
            foreach (var (format, n, k) in new[] { ("f32", 301, 64), ("f32", 256, 64), ("f32", 6148, 16), ("bf16", 301, 256), ("int8wo", 301, 256),
                ("fp8wo", 301, 256), ("int8dq", 301, 256), ("int4wo-64", 301, 256) })
            {
                var dense = HostTensor(host, format == "f32" ? DType.F32 : DType.BF16, n, k, Values(rng, n * k));
                IWeight w = new DenseWeight(dense);
                if (format is not ("f32" or "bf16"))
                {
                    w = Quantizer.QuantizeWeight(QuantConfigs.Parse(format), dense);
                    weights.Add(w);
                }
                var g = HostTensor(host, DType.F32, 1, n, Values(rng, n));
                foreach (int m in new[] { 1, 3 })
                {
                    float[] x = Values(rng, m * k), residual = Values(rng, m * n);
                    double tolerance = format == "bf16" && m > 1 ? Bf16ActivationTolerance : format is "f32" or "bf16" ? 2e-5 * Math.Sqrt(k) : QuantizedTolerance(m, k);
                    foreach (bool normed in new[] { false, true })
                    {
                        Check($"linear + add + rmsnorm {format} m={m} [{n}, {k}]: {(normed ? "normed" : "residual")}", tolerance, b =>
                        {
                            TensorView rs = Put(b, host, residual, m, n);
                            var ns = b.Allocate(DType.F32, m, n);
                            host.Add(ns);
                            b.LinearAddRmsNorm(Put(b, host, x, m, k), w, rs, g, 1e-5f, ns.View());
                            return Get(b, normed ? ns.View() : rs);
                        });
                    }
                }
            }

            // At decode the norm's 1/rms is left to the GEMVs that read the normed row (int8wo, fp8wo, int4wo and dense
            // apply it; int8dq's quantizer and the host get the row scaled first): one linear, q/k/v fused, gate·up.
            foreach (string format in new[] { "f32", "bf16", "int8wo", "fp8wo", "int8dq", "int4wo-64" })
            {
                const int n = 256, k = 128;
                var dtype = format == "f32" ? DType.F32 : DType.BF16;
                IWeight Weight(int rows, int columns)
                {
                    var dense = HostTensor(host, dtype, rows, columns, Values(rng, rows * columns));
                    if (format is "f32" or "bf16")
                        return new DenseWeight(dense);
                    var quantized = Quantizer.QuantizeWeight(QuantConfigs.Parse(format), dense);
                    weights.Add(quantized);
                    return quantized;
                }
                IWeight producer = Weight(n, k), single = Weight(37, n);
                IWeight[] qkv = [Weight(29, n), Weight(13, n), Weight(13, n)];
                var g = HostTensor(host, DType.F32, 1, n, Values(rng, n));
                float[] x = Values(rng, k), residual = Values(rng, n);
                double tolerance = format is "f32" or "bf16" ? 2e-5 * Math.Sqrt(n) : QuantizedTolerance(1, n);
                TensorView Normed(IBackend b)
                {
                    var ns = b.Allocate(DType.F32, 1, n);
                    host.Add(ns);
                    b.LinearAddRmsNorm(Put(b, host, x, 1, k), producer, Put(b, host, residual, 1, n), g, 1e-5f, ns.View());
                    return ns.View();
                }
                Check($"linear + add + rmsnorm {format} [{n}, {k}], then linear [37]", tolerance, b => Run(b, 1, 37, (b, y) => b.Linear(Normed(b), single, y)));
                Check($"linear + add + rmsnorm {format} [{n}, {k}], then q/k/v (v)", tolerance, b => Run(b, 1, 13, (b, y) =>
                {
                    var q = b.Allocate(DType.F32, 1, 29);
                    var kk = b.Allocate(DType.F32, 1, 13);
                    host.Add(q);
                    host.Add(kk);
                    b.Linear(Normed(b), qkv, [q.View(), kk.View(), y]);
                }));
                Check($"linear + add + rmsnorm {format} [{n}, {k}], then gate·up [13]", tolerance, b => Run(b, 1, 13, (b, y) =>
                {
                    using var scratch = b.Allocate(DType.F32, 1, 13);
                    b.GatedLinear(Normed(b), qkv[1], qkv[2], y, scratch.View());
                }));
            }

            // A BF16 cache holds the rotated rows rounded to bf16: an f32 rotation one ulp apart (fused or not) may round to
            // the neighbouring bf16 (about one element in 2^16), so its rows are held to one bf16 step of the largest
            // element, 2^-8 (a misplaced row errs by ~1).
            foreach (var (rows, heads, kvHeads, headDim, cacheType) in new[] { (5, 3, 1, 8, DType.F32), (1, 4, 2, 64, DType.F32), (3, 6, 2, 128, DType.F32), (3, 6, 2, 128, DType.BF16) })
            {
                using var rope = new RopeTable(headDim, 64, 10000f, null);
                int qc = heads * headDim, kc = kvHeads * headDim;
                float[] q = Values(rng, rows * qc), k = Values(rng, rows * kc), v = Values(rng, rows * kc), cache = Values(rng, 20 * kc);
                string name = $"rope + store kv D={headDim} [{rows}, {heads}/{kvHeads} heads] at 11{CacheName(cacheType)}";
                foreach (var (part, output) in new[] { ("q", 0), ("keys", 1), ("values", 2) })
                {
                    Check($"{name}: {part}", output > 0 && cacheType == DType.BF16 ? 1.0 / 128 : 1e-5, b =>
                    {
                        TensorView qs = Put(b, host, q, rows, qc), keys = Put(b, host, cache, 20, kc, cacheType), values = Put(b, host, cache, 20, kc, cacheType);
                        b.RopeAndStoreKv(qs, Put(b, host, k, rows, kc), Put(b, host, v, rows, kc), rope, keys, values, 11);
                        return Get(b, output == 0 ? qs : output == 1 ? keys : values);
                    });
                }
            }

            // Decode's rope folded into attention (RopeAndAttention on one row; the CUDA backend's one launch): the
            // output and the cache rows it appends, against the CPU's rope then attention. Positions in the first,
            // third and last chunk of a 96-row cache (several groups a kv head and their merge), D 64, 128 and 16.
            foreach (var (heads, kvHeads, headDim, position, cacheType) in new[] { (4, 2, 64, 11, DType.F32), (6, 2, 128, 70, DType.F32), (8, 8, 16, 95, DType.F32), (6, 2, 128, 70, DType.BF16) })
            {
                using var rope = new RopeTable(headDim, 96, 10000f, null);
                int qc = heads * headDim, kc = kvHeads * headDim;
                float[] q = Values(rng, qc), k = Values(rng, kc), v = Values(rng, kc), keysHost = Values(rng, 96 * kc), valuesHost = Values(rng, 96 * kc);
                string name = $"rope + attention D={headDim} [{heads}/{kvHeads} heads] at {position}{CacheName(cacheType)}";
                foreach (var (part, output) in new[] { ("output", 0), ("keys", 1), ("values", 2) })
                {
                    // With a BF16 cache as above; the output then moves by ~1e-4 at most (one key element a bf16 step apart
                    // moves one score by ~2^-8 of one term).
                    Check($"{name}: {part}", cacheType == DType.BF16 ? (output == 0 ? 1e-3 : 1.0 / 128) : 1e-5, b =>
                    {
                        TensorView keys = Put(b, host, keysHost, 96, kc, cacheType), values = Put(b, host, valuesHost, 96, kc, cacheType);
                        float[] y = Run(b, 1, qc, (b, y) => b.RopeAndAttention(Put(b, host, q, 1, qc), Put(b, host, k, 1, kc), Put(b, host, v, 1, kc), rope,
                            keys, values, position, heads, kvHeads, y));
                        return output == 0 ? y : Get(b, output == 1 ? keys : values);
                    });
                }
            }

            results.AddRange(Attention(device, reference, seed));

            // Sampling on the device against Generation.ThresholdSampling (its f64 reference) at uniforms away from
            // the boundaries: the device sums in f32, so a uniform within ~1e-6 of where one token's cumulative mass
            // ends can pick its neighbour (at 128256 tokens a token holds ~8e-6 of the mass on average); each u is
            // moved until the reference picks the same token 3e-6 on either side.
            foreach (int length in new[] { 37, 1000, 128256 })
            {
                var logits = Values(rng, length).Select(v => 4 * v).ToArray();
                var onReference = Put(reference, host, logits, 1, length);
                foreach (var (temperature, topK, topP) in new[] { (1f, 0, 1f), (0.8f, 40, 1f), (0.7f, 0, 0.9f), (1.2f, 50, 0.8f), (0.5f, 1, 1f) })
                {
                    foreach (double start in new[] { 0.013, 0.5, 0.987 })
                    {
                        double u = start;
                        while (reference.Sample(onReference, temperature, topK, topP, u - 3e-6) != reference.Sample(onReference, temperature, topK, topP, u + 3e-6))
                            u += 7e-6;
                        Check($"sample of {length} T={temperature} top-k {topK} top-p {topP} at {u:F6}", 0,
                            b => [b.Sample(Put(b, host, logits, 1, length), temperature, topK, topP, u)]);
                    }
                }
            }

            foreach (int length in new[] { 1, 1000, 128256 })
            {
                var logits = Values(rng, length);
                int top = rng.Next(length);
                logits[top] = 2f;
                logits[length - 1 - (length - 1 - top) / 2] = 2f; // a tie at or after top: the lower index must win
                Check($"argmax of {length}", 0, b => [b.ArgMax(Put(b, host, logits, 1, length))]);
            }
        }
        finally
        {
            foreach (var t in host)
                t.Dispose();
            foreach (var w in weights)
                w.Dispose();
        }
        return results;
    }

    /// <summary>Causal GQA attention at odd shapes: decode (one row: flash-decoding) and prefill (tiled flash attention,
    /// on tensor cores on a GPU for D 64 and 128, with its bf16 bound), starting past position 0.</summary>
    public static List<CheckResult> Attention(IBackend device, IBackend reference, int seed = 1)
    {
        var rng = new Random(seed);
        var host = new List<Tensor>();
        var results = new List<CheckResult>();
        var cuda = device as CudaBackend;
        try
        {
            // The last three (several query and key tiles of the tensor-core prefill attention) on a GPU only: slow on ILGPU's CPU accelerator.
            var attentionShapes = new[] { (1, 0, 4, 4, 8), (1, 37, 6, 2, 64), (7, 0, 6, 3, 16), (5, 9, 8, 2, 128), (1, 200, 8, 1, 128), (1, 130, 32, 8, 128), (1, 255, 12, 4, 96), (1, 70, 16, 2, 64), (38, 50, 8, 2, 64), (40, 0, 4, 2, 128), (17, 100, 3, 1, 12), (33, 200, 2, 2, 32), (6, 3, 2, 1, 6), (130, 0, 8, 2, 128), (100, 60, 6, 3, 64), (200, 56, 4, 1, 128) };
            // A BF16 cache for decode (with and without the merge), tiled prefill, the fallback (D 6) and, on a GPU, the
            // tensor-core prefill: both backends read the same bf16 values, so the f32 bound holds.
            var shapes = (cuda is { HasTensorCores: true } ? attentionShapes : attentionShapes[..^3]).Select(s => (s, DType.F32))
                .Concat(new[] { (1, 37, 6, 2, 64), (1, 130, 32, 8, 128), (38, 50, 8, 2, 64), (6, 3, 2, 1, 6) }.Select(s => (s, DType.BF16)))
                .Concat(cuda is { HasTensorCores: true } ? [((130, 0, 8, 2, 128), DType.BF16)] : []);
            foreach (var ((rows, start, heads, kvHeads, d), cacheType) in shapes)
            {
                const int maxSeq = 256;
                var q = Values(rng, rows * heads * d);
                var keys = Values(rng, maxSeq * kvHeads * d);
                var values = Values(rng, maxSeq * kvHeads * d);
                // Prefill on tensor cores rounds q, k, v and the probabilities to bf16 (FlashAttentionPtx).
                bool bf16 = rows > 1 && cuda is { HasTensorCores: true, AttentionOnTensorCores: true } && Lowbit.Cuda.Ptx.FlashAttentionPtx.Supports(d);
                float[] Attend(IBackend b) => Run(b, rows, heads * d, (b, y) =>
                    b.Attention(Put(b, host, q, rows, heads * d), Put(b, host, keys, maxSeq, kvHeads * d, cacheType), Put(b, host, values, maxSeq, kvHeads * d, cacheType),
                        start, heads, kvHeads, d, y));
                float[] expected = Attend(reference), actual = Attend(device);
                string name = $"attention rows={rows} start={start} heads={heads}/{kvHeads} D={d}{CacheName(cacheType)}{(bf16 ? " (tensor cores)" : "")}";
                // ILGPU's CPU accelerator (CI) now and then returns an all-zero output from a flash launch that follows
                // another attention launch (about 1 in 200 in a harness; the kernel does run: an output filled with NaN
                // comes back all zeros; the same inputs pass on the next launch, and no GPU run has shown it). There, and
                // only for that signature, the check runs once more and says so; any other difference fails at once.
                if (cuda is { IsEmulated: true } && actual.All(v => v == 0) && expected.Any(v => v != 0))
                {
                    actual = Attend(device);
                    name += " (retried: an all-zero output on ILGPU's CPU accelerator)";
                }
                results.Add(new CheckResult(name, RelativeError(actual, expected), bf16 ? Bf16ActivationTolerance : 1e-5));
            }
        }
        finally
        {
            foreach (var t in host)
                t.Dispose();
        }
        return results;
    }

    /// <summary>
    /// Bound on the largest error relative to the largest output when x is rounded to bf16 (tensor cores): each
    /// product gets a relative error δ, |δ| ≤ u = 2^-9, so for random data the error of a sum of k terms has about
    /// u/√3 of the output's spread (1.1e-3, whatever k), and the largest error against the largest output stays
    /// near that. 5u leaves a margin of about 8 while a wrong fragment or edge gives errors near 1.
    /// </summary>
    public const double Bf16ActivationTolerance = 5.0 / 512;

    /// <summary>
    /// The tensor-core GEMM with every tiling of <see cref="GemmTile.Candidates"/> this GPU runs against the reference's linear at
    /// odd shapes (m, n not multiples of any tile, k a multiple of 8 but not of the k-step). x holds bf16 values,
    /// so the only difference left is the order of f32 sums: the bound is the f32 GEMM's. A tiling whose PTX the
    /// driver rejects gives one failed result holding the JIT log, and the others still run. Results come one by
    /// one (print them as they come: a kernel that faults takes the context down with it).
    /// </summary>
    public static IEnumerable<CheckResult> TensorCores(CudaBackend device, IBackend reference, int seed = 2)
    {
        ArgumentNullException.ThrowIfNull(device);
        var rng = new Random(seed);
        var host = new List<Tensor>();
        try
        {
            foreach (var tile in GemmTile.Candidates.Where(device.Runs))
            {
                string? error = null;
                try
                {
                    device.TensorCoreGemmFor(tile);
                }
                catch (InvalidOperationException e)
                {
                    error = e.Message;
                }
                if (error is not null)
                {
                    yield return new CheckResult($"tensor-core {tile.Name} did not load: {error}", double.NaN, 0);
                    continue;
                }
                foreach (var (m, n, k) in new[] { (2, 37, 64), (17, 129, 72), (100, 257, 264), (300, 77, 4096), (129, 1001, 1000) })
                {
                    var w = HostTensor(host, DType.BF16, n, k, Values(rng, n * k));
                    var x = Values(rng, m * k);
                    for (int i = 0; i < x.Length; i++)
                        x[i] = DTypeConversion.BFloat16ToSingle(DTypeConversion.SingleToBFloat16(x[i]));
                    var expected = Run(reference, m, n, (b, y) => b.Linear(Put(b, host, x, m, k), new DenseWeight(w), y));
                    var actual = Run(device, m, n, (b, y) => device.LinearOnTensorCores(Put(b, host, x, m, k), w, y, tile));
                    yield return new CheckResult($"tensor-core {tile.Name} m={m} n={n} k={k}", RelativeError(actual, expected), 2e-5 * Math.Sqrt(k));
                }
            }
        }
        finally
        {
            foreach (var t in host)
                t.Dispose();
        }
    }

    /// <summary>Greedy decoding of <paramref name="steps"/> tokens after a prefill of the prompt, on both
    /// models: the token ids each produced (compare them; the first difference is the divergence).</summary>
    public static (int[] Reference, int[] Device) GreedyDecode(LanguageModel reference, LanguageModel device, string prompt, int steps) =>
        (Greedy(reference, prompt, steps), Greedy(device, prompt, steps));

    private static int[] Greedy(LanguageModel model, string prompt, int steps)
    {
        int[] prompted = model.Tokenizer.Encode(prompt, addBos: true);
        // The Generator's own loop: on a GPU, recorded (graph) steps and the device argmax.
        using var generator = new Generator(model);
        return [.. generator.GenerateTokens(prompted, new GenerationOptions { MaxTokens = steps, StopAtEos = false })];
    }

    private static IEnumerable<(int M, int N, int K)> LinearShapes(bool large)
    {
        yield return (1, 37, 67);     // scalar GEMV: K not a multiple of 8
        yield return (1, 77, 256);    // vector GEMV, N not a multiple of the 4 rows a group
        yield return (1, 45, 1000);
        yield return (5, 45, 72);     // GEMM, partial tiles
        yield return (17, 33, 67);
        if (large)
        {
            yield return (1, 4096, 4096);
            yield return (1, 1000, 14336);
            yield return (64, 512, 4096);
            yield return (300, 1001, 1024); // prefill on tensor cores (bf16): no dimension a multiple of a tile
            yield return (37, 4097, 4096);
        }
    }

    /// <summary>The quantized formats with CUDA kernels at shapes that reach every path: N not a multiple of the
    /// GEMV's 4 rows a warp, K the format's smallest (int4wo: one group) and a few groups, byte formats' K not a
    /// multiple of 16 (the padded last vector), K long enough to split rows over 2 and 4 warps, m = 1 (GEMV)
    /// and m &gt; 1 (GEMM, partial 64×64 tiles on both sides), and one x row that is not 16-byte aligned (it
    /// starts after <c>Skip</c> rows of 67 floats: the GEMM serves it).</summary>
    private static IEnumerable<(string Format, int M, int N, int K, int Skip)> QuantizedLinearShapes(bool large)
    {
        foreach (string format in new[] { "int8wo", "fp8wo", "int8dq" })
        {
            yield return (format, 1, 37, 67, 0);
            yield return (format, 1, 37, 67, 1);
            yield return (format, 1, 77, 256, 0);
            yield return (format, 1, 37, 4096, 0); // split over 4 warps
            yield return (format, 5, 45, 72, 0);
            yield return (format, 70, 67, 100, 0);
        }
        yield return ("int8dq", 70, 67, 272, 0); // int8 tensor cores on a GPU: partial tiles on every side
        foreach (int g in new[] { 32, 64, 128, 256 })
        {
            string format = $"int4wo-{g}";
            yield return (format, 1, 37, g, 0);
            yield return (format, 1, 45, 3 * g, 0);
            yield return (format, 5, 45, 2 * g, 0);
            yield return (format, 70, 67, g, 0);
        }
        yield return ("int4wo-64", 1, 37, 4096, 0); // split over 2 warps
        yield return ("int4wo-128", 1, 21, 8192, 0); // over 4
        if (large)
        {
            foreach (string format in new[] { "int8wo", "fp8wo", "int8dq", "int4wo-32", "int4wo-64", "int4wo-128", "int4wo-256" })
            {
                yield return (format, 1, 4096, 4096, 0);
                yield return (format, 1, 1000, 14336, 0);
                yield return (format, 64, 512, 4096, 0);
            }
        }
    }

    private static float[] Values(Random rng, int count)
    {
        var v = new float[count];
        for (int i = 0; i < v.Length; i++)
            v[i] = (float)(rng.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>A host tensor [rows, columns] of <paramref name="dtype"/> holding the values (rounded to it).</summary>
    private static Tensor HostTensor(List<Tensor> keep, DType dtype, int rows, int columns, float[] values)
    {
        var t = Tensor.Allocate(dtype, rows, columns);
        keep.Add(t);
        if (dtype == DType.F32)
            values.CopyTo(t.AsSpan<float>());
        else
            DTypeConversion.FromSingle(values, dtype, t.AsSpan<ushort>());
        return t;
    }

    private static string CacheName(DType cacheType) => cacheType == DType.F32 ? "" : $", {cacheType} cache";

    private static TensorView Put(IBackend b, List<Tensor> keep, float[] values, int rows, int columns, DType dtype = DType.F32)
    {
        var t = b.Allocate(dtype, rows, columns);
        keep.Add(t);
        b.CopyFromHost(values, t.View());
        return t.View();
    }

    private static float[] Get(IBackend b, TensorView v)
    {
        var result = new float[v.ElementCount];
        b.CopyToHost(v, result);
        return result;
    }

    /// <summary>Runs an op that writes a fresh [rows, columns] output and reads it back.</summary>
    private static float[] Run(IBackend b, int rows, int columns, Action<IBackend, TensorView> op)
    {
        using var y = b.Allocate(DType.F32, rows, columns);
        op(b, y.View());
        return Get(b, y.View());
    }

    /// <summary>Puts the values on the backend and applies an in-place op to them.</summary>
    private static TensorView Apply(IBackend b, List<Tensor> keep, float[] values, int rows, int columns, Action<TensorView> op)
    {
        var v = Put(b, keep, values, rows, columns);
        op(v);
        return v;
    }

    /// <summary>One check: the op on the device against the op on the reference.</summary>
    private static CheckResult Compare(IBackend device, IBackend reference, string name, double tolerance, Func<IBackend, float[]> op) =>
        new(name, RelativeError(op(device), op(reference)), tolerance);

    private static double RelativeError(float[] actual, float[] expected)
    {
        if (actual.Length != expected.Length)
            return double.PositiveInfinity;
        double scale = 0, error = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            scale = Math.Max(scale, Math.Abs(expected[i]));
            double e = Math.Abs((double)actual[i] - expected[i]);
            error = double.IsNaN(e) ? double.NaN : Math.Max(error, e);
        }
        return error / Math.Max(scale, 1e-30);
    }
}
