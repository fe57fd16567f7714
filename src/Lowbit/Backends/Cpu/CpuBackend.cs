using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The CPU backend: each operation is a SIMD kernel (AVX-512, AVX2 or scalar, picked at run time)
/// threaded over output rows by this backend's own <see cref="CpuThreadPool"/> (two models with different
/// thread counts in one process do not share, or replace, each other's workers).
/// </summary>
public sealed class CpuBackend : IBackend
{
    private readonly CpuThreadPool _pool;
    private Tensor? _attentionScratch;

    public CpuBackend(int threads)
    {
        _pool = new CpuThreadPool(threads);
        Threads = threads;
    }

    public string Name => $"cpu ({CpuCapabilities.Best}, {Threads} threads)";

    public int Threads { get; }

    public bool UsesHostMemory => true;

    public Tensor Allocate(DType dtype, int rows, int columns) => Tensor.Allocate(dtype, rows, columns);

    /// <summary>Weights stay where they are (memory-mapped or in native memory); only the formats are checked.</summary>
    public void PrepareWeights(ModelWeights weights) => CheckSupported(weights);

    public void CopyFromHost(ReadOnlySpan<float> source, TensorView destination)
    {
        if (destination.DType == DType.F32)
            source.CopyTo(destination.AsSpan<float>());
        else
            DTypeConversion.FromSingle(source, destination.DType, destination.AsSpan<ushort>());
    }

    public void CopyToHost(TensorView source, Span<float> destination) => DTypeConversion.ToSingle(source.AsBytes(), source.DType, destination);

    public void Embedding(Tensor table, ReadOnlySpan<int> tokens, TensorView destination)
    {
        for (int i = 0; i < tokens.Length; i++)
            Cpu.Embedding.Lookup(table, tokens[i], destination.Row<float>(i));
    }

    public void RmsNorm(TensorView x, Tensor weight, float eps, TensorView destination) =>
        Cpu.RmsNorm.Apply(x.AsSpan<float>(), weight.AsSpan<float>(), x.Rows, x.Columns, eps, destination.AsSpan<float>());

    /// <summary>Dispatches on the weight's format through <see cref="CpuLinearKernels"/>.</summary>
    public void Linear(TensorView x, IWeight weight, TensorView destination) =>
        CpuLinearKernels.For(weight)(CpuCapabilities.Best, _pool, x.AsSpan<float>(), x.Rows, weight, destination.AsSpan<float>());

    public void Linear(TensorView x, ReadOnlySpan<IWeight> weights, ReadOnlySpan<TensorView> destinations)
    {
        if (weights.Length != destinations.Length)
            throw new ArgumentException($"{weights.Length} weights for {destinations.Length} destinations.", nameof(destinations));
        for (int i = 0; i < weights.Length; i++)
            Linear(x, weights[i], destinations[i]);
    }

    /// <summary>Fails at load, not at the first token, when a linear layer's format has no CPU kernel.</summary>
    /// <exception cref="NotSupportedException">Names the layer, its format and this backend.</exception>
    public void CheckSupported(ModelWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        foreach (var (name, weight) in weights.Linears())
        {
            if (!CpuLinearKernels.Supports(weight))
                throw new NotSupportedException($"\"{name}\" is {weight.FormatName}, which the CPU backend has no linear kernel for.");
        }
    }

    public void AddBias(TensorView x, Tensor bias)
    {
        var b = bias.AsSpan<float>();
        for (int r = 0; r < x.Rows; r++)
            Residual.Add(b, x.Row<float>(r));
    }

    public void RopeAndStoreKv(TensorView q, TensorView k, TensorView v, RopeTable rope, TensorView keys, TensorView values, int startPos)
    {
        Cpu.Rope.Apply(q.AsSpan<float>(), q.Rows, q.Columns / rope.HeadDim, rope.HeadDim, rope.Cos, rope.Sin, startPos);
        Cpu.Rope.Apply(k.AsSpan<float>(), k.Rows, k.Columns / rope.HeadDim, rope.HeadDim, rope.Cos, rope.Sin, startPos);
        // Into the cache as CopyFromHost stores host floats: copied, or narrowed to nearest even for a BF16 cache.
        CopyFromHost(k.AsSpan<float>(), keys.Slice(startPos, k.Rows));
        CopyFromHost(v.AsSpan<float>(), values.Slice(startPos, v.Rows));
    }

    public void LinearAddRmsNorm(TensorView x, IWeight weight, TensorView residual, Tensor normWeight, float eps, TensorView normed)
    {
        Linear(x, weight, normed);
        Residual.Add(normed.AsSpan<float>(), residual.AsSpan<float>());
        RmsNorm(residual, normWeight, eps, normed);
    }

    public void Attention(TensorView q, TensorView keys, TensorView values, int startPos, int heads, int kvHeads, int headDim, TensorView destination)
    {
        int scratchLength = Cpu.Attention.ScratchLength(_pool.ThreadCount, keys.Rows);
        if (_attentionScratch is null || _attentionScratch.ElementCount < scratchLength)
        {
            _attentionScratch?.Dispose();
            _attentionScratch = Tensor.Allocate(DType.F32, scratchLength);
        }
        if (keys.DType != values.DType)
            throw new ArgumentException($"Attention: the K cache is {keys.DType} and the V cache {values.DType}; they must agree.", nameof(values));
        Cpu.Attention.Compute(CpuCapabilities.Best, _pool, q.AsSpan<float>(), keys.AsBytes(), values.AsBytes(), keys.DType, q.Rows,
            heads, kvHeads, headDim, startPos, _attentionScratch.AsSpan<float>(), destination.AsSpan<float>());
    }

    public int ArgMax(TensorView row) => Generation.Sampler.ArgMax(row.AsSpan<float>());

    public int Sample(TensorView row, float temperature, int topK, float topP, double uniform) =>
        Generation.ThresholdSampling.Sample(row.AsSpan<float>(), temperature, topK, topP, uniform);

    /// <summary>Operations run as they are issued on the CPU: nothing to record.</summary>
    public IRecordedStep? RecordStep(Action step) => null;

    public void GatedLinear(TensorView x, IWeight gate, IWeight up, TensorView destination, TensorView scratch)
    {
        Linear(x, gate, destination);
        Linear(x, up, scratch);
        Cpu.SiluMul.Apply(scratch.AsSpan<float>(), destination.AsSpan<float>());
    }

    public void Dispose()
    {
        _attentionScratch?.Dispose();
        _pool.Dispose();
    }
}
