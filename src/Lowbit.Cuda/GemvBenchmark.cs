using System.Diagnostics;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Cuda.Driver;
using Lowbit.Cuda.Kernels;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>Timing of the decode GEMVs on the device (bench, not a test): <c>copies</c> random weights
/// (<see cref="RandomWeight"/>) used in turn so each launch reads its weight from HBM rather than the 50 MB L2.</summary>
public sealed partial class CudaBackend
{
    /// <summary>The formats <see cref="TimeGemv"/> is run on by <c>lowbit selftest --bench</c>.</summary>
    public static IReadOnlyList<string> BenchFormats { get; } = ["bf16", "int8wo", "int8dq", "fp8wo", "int4wo-32", "int4wo-64", "int4wo-128", "int4wo-256"];

    /// <summary>Microseconds a GEMV [n, k] of <paramref name="format"/> (a <see cref="RandomWeight"/> name) takes
    /// through <see cref="Linear"/>, the mean over <paramref name="iterations"/> calls recorded into one CUDA graph and
    /// replayed, as a decode step runs them (eager launches would time the host at the small shapes; int8dq's include
    /// its activation quantization), the bytes one call moves (weight, scales and zeros + x + y), and the
    /// GEMV kernel's resources on a GPU (registers and local bytes a thread, resident warps an SM; empty for dense).</summary>
    public (double Microseconds, long Bytes, string Resources) TimeGemv(string format, int n, int k, int copies = 16, int iterations = 400)
    {
        var weights = new CudaWeight[copies];
        using var x = Allocate(DType.F32, 1, k);
        using var y = Allocate(DType.F32, 1, n);
        try
        {
            for (int c = 0; c < copies; c++)
                weights[c] = RandomWeight(format, n, k, seed: c + 1);
            var rng = new Random(7);
            var xs = new float[k];
            for (int i = 0; i < k; i++)
                xs[i] = (float)(rng.NextDouble() * 2 - 1);
            CopyFromHost(xs, x.View());
            // Warm-up: loads (compiles) the kernels and touches every copy once.
            for (int c = 0; c < copies; c++)
                Linear(x.View(), weights[c], y.View());
            _stream.Synchronize();
            double us = TimeInGraph(i => Linear(x.View(), weights[i % copies], y.View()), 0, iterations, replays: 3);
            var w0 = weights[0];
            string resources = w0.Format == CudaFormat.Int4Grouped && Int4GemvOnTensorCores(k, w0.GroupSize)
                ? _int4MmaGemv!.Describe(w0.GroupSize, Int4TensorCoreStages)
                : Resources(GemvKernel(w0.Format));
            return (us, w0.ByteLength + 4L * (n + k), resources);
        }
        finally
        {
            foreach (var w in weights)
                w?.Dispose();
        }
    }

    /// <summary>"R regs, L B local, W warps/SM" for a GEMV kernel compiled for a CUDA GPU; empty otherwise.</summary>
    private string Resources(Kernel? kernel)
    {
        if (kernel is not CudaKernel cuda)
            return "";
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(out int registers, CudaDriver.FunctionAttributeRegisters, cuda.FunctionPtr), "cuFuncGetAttribute");
        CudaDriver.Check(CudaDriver.cuFuncGetAttribute(out int local, CudaDriver.FunctionAttributeLocalBytes, cuda.FunctionPtr), "cuFuncGetAttribute");
        int groups = _accelerator.EstimateMaxActiveGroupsPerMultiprocessor(kernel, GemvRows.GroupSize, 0);
        return $"{registers} regs, {local} B local, {groups * GemvRows.WarpsPerGroup} warps/SM";
    }

    /// <summary>Microseconds a decode attention call takes at <paramref name="position"/> (Llama-3-8B's heads: 32 query,
    /// 8 kv, D = 128; a cache of <paramref name="maxSequence"/> rows) with at most <paramref name="blocks"/> groups a kv
    /// head (0: the kernel's own choice), with an F32 or BF16 cache: a CUDA graph of 100 calls replayed, as a decode step
    /// runs it (eager launches would time the host instead).</summary>
    public double TimeAttention(int position, int maxSequence, int blocks, DType cache = DType.F32)
    {
        const int heads = 32, kvHeads = 8, headDim = 128;
        using var q = RandomTensor(DType.F32, 1, heads * headDim, 1);
        using var keys = RandomTensor(cache, maxSequence, kvHeads * headDim, 2);
        using var values = RandomTensor(cache, maxSequence, kvHeads * headDim, 3);
        using var output = Allocate(DType.F32, 1, heads * headDim);
        _attention.BlocksLimit = blocks;
        try
        {
            Attention(q.View(), keys.View(), values.View(), position, heads, kvHeads, headDim, output.View()); // scratch, compile
            return TimeInGraph(() => Attention(q.View(), keys.View(), values.View(), 0, heads, kvHeads, headDim, output.View()), position);
        }
        finally
        {
            _attention.BlocksLimit = 0;
        }
    }

    /// <summary>Microseconds of one prefill attention of <paramref name="rows"/> rows from position 0 at Llama-3-8B's heads
    /// (32/8, D 128), on tensor cores or with the ILGPU flash kernel, and the TFLOP/s of its causal work
    /// (4·D FLOP a query-key pair: q·k and p·v).</summary>
    public (double Microseconds, double Teraflops) TimePrefillAttention(int rows, bool tensorCores, DType cache = DType.F32)
    {
        const int heads = 32, kvHeads = 8, headDim = 128;
        using var q = RandomTensor(DType.F32, rows, heads * headDim, 1);
        using var keys = RandomTensor(cache, rows, kvHeads * headDim, 2);
        using var values = RandomTensor(cache, rows, kvHeads * headDim, 3);
        using var output = Allocate(DType.F32, rows, heads * headDim);
        bool saved = AttentionOnTensorCores;
        AttentionOnTensorCores = tensorCores;
        try
        {
            double us = Time(() => Attention(q.View(), keys.View(), values.View(), 0, heads, kvHeads, headDim, output.View()));
            return (us, 4.0 * headDim * heads * rows * (rows + 1) / 2 / us / 1e6);
        }
        finally
        {
            AttentionOnTensorCores = saved;
        }
    }

    /// <summary>Microseconds one <see cref="Sample"/> call takes on a row of <paramref name="n"/> logits spread like a
    /// language model's (Gaussian, σ = 3), as a decode step pays it after the graph: the launch, the copy of the token
    /// back and the wait (temperature 0: ArgMax).</summary>
    public double TimeSample(int n, float temperature, int topK, float topP, int calls = 200)
    {
        var rng = new Random(9);
        var values = new float[n];
        for (int i = 0; i < n; i++)
            values[i] = (float)(3 * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        using var logits = Allocate(DType.F32, 1, n);
        CopyFromHost(values, logits.View());
        Sample(logits.View(), temperature, topK, topP, 0.5);
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < calls; i++)
            Sample(logits.View(), temperature, topK, topP, (i + 0.5) / calls);
        return clock.Elapsed.TotalMicroseconds / calls;
    }

    /// <summary>Microseconds in a graph of what the folded norm (<see cref="LinearAddRmsNorm"/>) replaces and adds at
    /// dim 4096 with a bf16 4096×4096 weight: an RMSNorm launch, the plain GEMV, the GEMV that adds into the residual
    /// and norms it, and the GEMV that reads such a row (its 1/rms applied).</summary>
    public (double RmsNorm, double Gemv, double ProducerGemv, double ConsumerGemv) TimeNormFold()
    {
        const int dim = 4096;
        using var x = RandomTensor(DType.F32, 1, dim, 4);
        using var residual = RandomTensor(DType.F32, 1, dim, 5);
        using var g = RandomTensor(DType.F32, 1, dim, 6);
        using var w = RandomTensor(DType.BF16, dim, dim, 7);
        using var normed = Allocate(DType.F32, 1, dim);
        using var y = Allocate(DType.F32, 1, dim);
        var weight = new DenseWeight(w);
        double norm = TimeInGraph(() => RmsNorm(x.View(), g, 1e-5f, normed.View()), 0);
        double gemv = TimeInGraph(() => Linear(x.View(), weight, y.View()), 0);
        double producer = TimeInGraph(() => LinearAddRmsNorm(x.View(), weight, residual.View(), g, 1e-5f, normed.View()), 0);
        LinearAddRmsNorm(x.View(), weight, residual.View(), g, 1e-5f, normed.View());
        double consumer = TimeInGraph(() => Linear(normed.View(), weight, y.View()), 0);
        return (norm, gemv, producer, consumer);
    }

    /// <summary>Mean microseconds of <paramref name="call"/> recorded <paramref name="calls"/> times into one CUDA
    /// graph and replayed at <paramref name="position"/>, as a decode step runs (eager launches would time the host).</summary>
    private double TimeInGraph(Action call, int position, int calls = 100, int replays = 5) =>
        TimeInGraph(_ => call(), position, calls, replays);

    /// <summary>As above, call i of the graph given i (to rotate through weights that do not fit in L2 together).</summary>
    private double TimeInGraph(Action<int> call, int position, int calls, int replays)
    {
        using var graph = RecordStep(() =>
        {
            for (int i = 0; i < calls; i++)
                call(i);
        }) ?? throw new NotSupportedException("Timing in a graph needs a CUDA GPU.");
        graph.Replay(0, position);
        _stream.Synchronize();
        var clock = Stopwatch.StartNew();
        for (int r = 0; r < replays; r++)
            graph.Replay(0, position);
        _stream.Synchronize();
        return clock.Elapsed.TotalMicroseconds / (replays * calls);
    }
}
