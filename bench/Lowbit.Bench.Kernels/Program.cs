// Micro-benchmark of the CPU MatMul kernels against this machine's own streaming read bandwidth,
// measured in the same run (bandwidth drifts here: 46-80 GB/s within an hour).
//   dotnet run -c Release --project bench/Lowbit.Bench.Kernels -- [--threads 2] [--seconds 1] [--filter TEXT]
// --filter runs only the rows whose label contains TEXT (e.g. "GEMV BF16", "GEMM").
// GEMV: rotating weight copies totalling >= 256 MB so no cache holds them; GB/s counts weight bytes.
// Bandwidth: a 4-accumulator Vector512 sum over the same copies, on the same pool, in passes alternating
// with the kernel's; each column is the best pass.
using System.Diagnostics;
using System.Runtime.Intrinsics;
using Lowbit.Backends.Cpu;
using Lowbit.Tensors;

namespace Lowbit.Bench.Kernels;

internal static unsafe class Program
{
    private const long RotationBytes = 256L << 20;

    private static double s_seconds = 1;
    private static string s_filter = "";

    private static int Main(string[] args)
    {
        int threads = 2;
        for (int i = 0; i + 1 < args.Length; i += 2)
        {
            if (args[i] == "--threads")
                threads = int.Parse(args[i + 1]);
            else if (args[i] == "--seconds")
                s_seconds = double.Parse(args[i + 1]);
            else if (args[i] == "--filter")
                s_filter = args[i + 1];
        }

        using var pool = new CpuThreadPool(threads);
        Console.WriteLine($"{Environment.ProcessorCount} cores, {threads} threads, best SIMD {CpuCapabilities.Best}, .NET {Environment.Version}, Avx10v1 (BF16 dot) {System.Runtime.Intrinsics.X86.Avx10v1.IsSupported}");
        Console.WriteLine("kernel                                   |   time/call | GB/s (weights) | read GB/s | % of read | GFLOP/s");
        if ("FMA peak".Contains(s_filter, StringComparison.Ordinal))
            FmaPeak();
        foreach ((int n, int k) in new[] { (5632, 2048), (2048, 5632) })
        {
            foreach (DType dtype in new[] { DType.BF16, DType.F16, DType.F32 })
            {
                foreach (SimdLevel level in new[] { SimdLevel.Avx512, SimdLevel.Avx2 })
                {
                    if (CpuCapabilities.IsSupported(level) && (dtype == DType.BF16 || level == CpuCapabilities.Best))
                        Gemv(pool, level, dtype, n, k);
                }
            }
        }

        if ("decode ops".Contains(s_filter, StringComparison.Ordinal) || s_filter.StartsWith("decode", StringComparison.Ordinal))
            DecodeOps(pool);
        foreach ((int n, int k) in new[] { (5632, 2048), (2048, 5632), (2048, 2048) })
        {
            foreach (DType dtype in new[] { DType.BF16, DType.F32 })
                Gemm(pool, CpuCapabilities.Best, dtype, 64, n, k);
        }

        return 0;
    }

    private static void Gemv(CpuThreadPool pool, SimdLevel level, DType dtype, int n, int k)
    {
        string label = $"GEMV {dtype,-4} {n,5}x{k,-5} {level,-6} m=1";
        if (!label.Contains(s_filter, StringComparison.Ordinal))
            return;
        long bytes = (long)n * k * dtype.Size();
        int copies = (int)Math.Max(4, (RotationBytes + bytes - 1) / bytes);
        var weights = new Tensor[copies];
        for (int c = 0; c < copies; c++)
        {
            weights[c] = Tensor.Allocate(dtype, n, k);
            weights[c].AsBytes().Fill((byte)(0x3C + c)); // finite values in every dtype
        }

        var x = new float[k];
        var y = new float[n];
        x.AsSpan().Fill(0.5f);
        // Alternate one pass of the plain sum and one pass of the kernel over the same copies, and keep
        // each one's best: both bests then come from the same stretch of a drifting, shared machine.
        Action read = () => ReadPass(pool, weights);
        Action kernel = () =>
        {
            foreach (Tensor w in weights)
                MatMul.Compute(level, pool, x, 1, w, y);
        };
        read();
        kernel();
        double bestRead = double.MaxValue, bestKernel = double.MaxValue;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < s_seconds)
        {
            bestRead = Math.Min(bestRead, TimeOnce(read));
            bestKernel = Math.Min(bestKernel, TimeOnce(kernel));
        }

        double readGBs = bytes * copies / bestRead / 1e9;
        double seconds = bestKernel / copies;
        double gbs = bytes / seconds / 1e9;
        Console.WriteLine($"{label}            | {seconds * 1e6,8:F1} us | {gbs,14:F1} | {readGBs,9:F1} | {100 * gbs / readGBs,8:F1}% | {2.0 * n * k / seconds / 1e9,7:F1}");
        foreach (Tensor w in weights)
            w.Dispose();
    }

    private static void Gemm(CpuThreadPool pool, SimdLevel level, DType dtype, int m, int n, int k)
    {
        string label = $"GEMM {dtype,-4} {n,5}x{k,-5} {level,-6} m={m,-4}";
        if (!label.Contains(s_filter, StringComparison.Ordinal))
            return;
        using Tensor w = Tensor.Allocate(dtype, n, k);
        w.AsBytes().Fill(0x3C);
        var x = new float[m * k];
        var y = new float[m * n];
        x.AsSpan().Fill(0.5f);
        double seconds = Time(() => MatMul.Compute(level, pool, x, m, w, y), out double cpu);
        double flop = 2.0 * m * n * k;
        Console.WriteLine($"{label}         | {seconds * 1e6,8:F1} us | {(double)w.ByteLength / seconds / 1e9,14:F1} |           |          | {flop / seconds / 1e9,7:F1} ({flop / cpu / 1e9:F1} per CPU-second)");
    }

    /// <summary>Best wall time of one call of <paramref name="action"/> over about s_seconds, after a
    /// warm-up; <paramref name="cpuSeconds"/> is the process's CPU time per call (all threads, averaged),
    /// which other processes on a shared machine do not inflate.</summary>
    private static double Time(Action action, out double cpuSeconds)
    {
        for (int i = 0; i < 3; i++)
            action();
        double best = double.MaxValue;
        int calls = 0;
        using var process = Process.GetCurrentProcess();
        TimeSpan cpuStart = process.TotalProcessorTime;
        var total = Stopwatch.StartNew();
        while (total.Elapsed.TotalSeconds < s_seconds)
        {
            long start = Stopwatch.GetTimestamp();
            action();
            best = Math.Min(best, Stopwatch.GetElapsedTime(start).TotalSeconds);
            calls++;
        }

        process.Refresh();
        cpuSeconds = (process.TotalProcessorTime - cpuStart).TotalSeconds / calls;
        return best;
    }

    /// <summary>The small decode kernels at TinyLlama-1.1B's shapes (dim 2048, FFN 5632, 32 heads, 4 kv heads,
    /// head dim 64), attention at position 1023; time per call, caches warm.</summary>
    private static void DecodeOps(CpuThreadPool pool)
    {
        const int dim = 2048, ffn = 5632, heads = 32, kvHeads = 4, d = 64, maxSeq = 1024;
        var rng = new Random(1);
        float[] x = Random(rng, dim), w = Random(rng, dim), y = new float[dim];
        float[] gate = Random(rng, ffn), up = Random(rng, ffn);
        float[] cos = Random(rng, maxSeq * d / 2), sin = Random(rng, maxSeq * d / 2);
        float[] cache = Random(rng, maxSeq * kvHeads * d), scores = Random(rng, maxSeq);
        float[] scratch = new float[Attention.ScratchLength(pool.ThreadCount, maxSeq)];
        Report("decode RmsNorm n=2048", Time(() => RmsNorm.Apply(x, w, 1, dim, 1e-5f, y), out _));
        Report("decode SiluMul n=5632", Time(() => SiluMul.Apply(up, gate.AsSpan()), out _));
        Report("decode Rope 32x64", Time(() => Rope.Apply(x, 1, heads, d, cos, sin, maxSeq - 1), out _));
        Report("decode Softmax n=1024", Time(() => Softmax.Apply(scores), out _));
        Report("decode Residual n=2048", Time(() => Residual.Add(x, y), out _));
        Report("decode Attention pos=1023", Time(() => Attention.Compute(CpuCapabilities.Best, pool, x, cache, cache, 1, heads, kvHeads, d, maxSeq - 1, scratch, y), out _));
    }

    private static float[] Random(Random rng, int n)
    {
        var values = new float[n];
        for (int i = 0; i < n; i++)
            values[i] = rng.NextSingle() - 0.5f;
        return values;
    }

    private static void Report(string label, double seconds) =>
        Console.WriteLine($"{label,-41}    | {seconds * 1e6,8:F2} us |");

    /// <summary>One thread's Vector512 FMA throughput: 16 independent chains, registers only.</summary>
    private static void FmaPeak()
    {
        const int iterations = 10_000_000;
        double seconds = Time(() => s_sink += FmaChains(iterations), out _);
        Console.WriteLine($"FMA peak, 1 thread, 16 chains of Vector512      | {seconds * 1e6,8:F1} us |                |           |          | {16.0 * 32 * iterations / seconds / 1e9,7:F1}");
    }

    private static float s_sink;

    private static float FmaChains(int iterations)
    {
        Vector512<float> a = Vector512.Create(0.999f), b = Vector512.Create(1e-7f);
        Vector512<float> c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a;
        Vector512<float> c8 = a, c9 = a, c10 = a, c11 = a, c12 = a, c13 = a, c14 = a, c15 = a;
        for (int i = 0; i < iterations; i++)
        {
            c0 = Vector512.FusedMultiplyAdd(c0, a, b);
            c1 = Vector512.FusedMultiplyAdd(c1, a, b);
            c2 = Vector512.FusedMultiplyAdd(c2, a, b);
            c3 = Vector512.FusedMultiplyAdd(c3, a, b);
            c4 = Vector512.FusedMultiplyAdd(c4, a, b);
            c5 = Vector512.FusedMultiplyAdd(c5, a, b);
            c6 = Vector512.FusedMultiplyAdd(c6, a, b);
            c7 = Vector512.FusedMultiplyAdd(c7, a, b);
            c8 = Vector512.FusedMultiplyAdd(c8, a, b);
            c9 = Vector512.FusedMultiplyAdd(c9, a, b);
            c10 = Vector512.FusedMultiplyAdd(c10, a, b);
            c11 = Vector512.FusedMultiplyAdd(c11, a, b);
            c12 = Vector512.FusedMultiplyAdd(c12, a, b);
            c13 = Vector512.FusedMultiplyAdd(c13, a, b);
            c14 = Vector512.FusedMultiplyAdd(c14, a, b);
            c15 = Vector512.FusedMultiplyAdd(c15, a, b);
        }

        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11 + c12 + c13 + c14 + c15);
    }

    private struct SumJob
    {
        public byte* Data;
        public long Bytes;
        public int Chunks;
        public float Sink;
    }

    private static double TimeOnce(Action action)
    {
        long start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalSeconds;
    }

    /// <summary>One pass of a plain vectorised sum over every copy's bytes, on the same pool.</summary>
    private static void ReadPass(CpuThreadPool pool, Tensor[] copies)
    {
        foreach (Tensor t in copies)
        {
            var job = new SumJob { Data = (byte*)t.Data, Bytes = t.ByteLength, Chunks = 64 };
            pool.Run(&Sum, &job, job.Chunks);
        }
    }

    private static void Sum(void* context, int start, int end)
    {
        var job = (SumJob*)context;
        long per = job->Bytes / job->Chunks / 256 * 256;
        float* p = (float*)(job->Data + (start * per));
        long count = (end - start) * per / sizeof(float);
        Vector512<float> a = default, b = default, c = default, d = default;
        for (long i = 0; i < count; i += 64)
        {
            a += Vector512.Load(p + i);
            b += Vector512.Load(p + i + 16);
            c += Vector512.Load(p + i + 32);
            d += Vector512.Load(p + i + 48);
        }

        job->Sink += Vector512.Sum(a + b + c + d); // keeps the loads alive; races are harmless here
    }
}
