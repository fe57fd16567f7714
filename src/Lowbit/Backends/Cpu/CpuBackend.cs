using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The CPU backend: each operation is a SIMD kernel (AVX-512, AVX2 or scalar, picked at run time)
/// threaded over output rows by the shared <see cref="CpuThreadPool"/>.
/// </summary>
public sealed class CpuBackend : IBackend
{
    private Tensor? _attentionScratch;

    public CpuBackend(int threads)
    {
        CpuThreadPool.SetSharedThreadCount(threads);
        Threads = threads;
    }

    public string Name => $"cpu ({CpuCapabilities.Best}, {Threads} threads)";

    public int Threads { get; }

    public void Embedding(Tensor table, ReadOnlySpan<int> tokens, TensorView destination)
    {
        for (int i = 0; i < tokens.Length; i++)
            Cpu.Embedding.Lookup(table, tokens[i], destination.Row<float>(i));
    }

    public void RmsNorm(TensorView x, Tensor weight, float eps, TensorView destination) =>
        Cpu.RmsNorm.Apply(x.AsSpan<float>(), weight.AsSpan<float>(), x.Rows, x.Columns, eps, destination.AsSpan<float>());

    public void Linear(TensorView x, IWeight weight, TensorView destination)
    {
        switch (weight)
        {
            case DenseWeight dense:
                MatMul.Compute(x.AsSpan<float>(), x.Rows, dense.Tensor, destination.AsSpan<float>());
                break;
            default:
                throw new NotSupportedException($"The CPU backend has no kernel for weight format {weight.FormatName}.");
        }
    }

    public void AddBias(TensorView x, Tensor bias)
    {
        var b = bias.AsSpan<float>();
        for (int r = 0; r < x.Rows; r++)
            Residual.Add(b, x.Row<float>(r));
    }

    public void Rope(TensorView x, RopeTable rope, int startPos) =>
        Cpu.Rope.Apply(x.AsSpan<float>(), x.Rows, x.Columns / rope.HeadDim, rope.HeadDim, rope.Cos, rope.Sin, startPos);

    public void Attention(TensorView q, TensorView keys, TensorView values, int startPos, int heads, int kvHeads, int headDim, TensorView destination)
    {
        int scratchLength = Cpu.Attention.ScratchLength(CpuThreadPool.Shared.ThreadCount, keys.Rows);
        if (_attentionScratch is null || _attentionScratch.ElementCount < scratchLength)
        {
            _attentionScratch?.Dispose();
            _attentionScratch = Tensor.Allocate(DType.F32, scratchLength);
        }
        Cpu.Attention.Compute(q.AsSpan<float>(), keys.AsSpan<float>(), values.AsSpan<float>(), q.Rows,
            heads, kvHeads, headDim, startPos, _attentionScratch.AsSpan<float>(), destination.AsSpan<float>());
    }

    public void SiluMul(TensorView gate, TensorView up) => Cpu.SiluMul.Apply(up.AsSpan<float>(), gate.AsSpan<float>());

    public void Add(TensorView y, TensorView x) =>
        Residual.Add(x.AsSpan<float>(), y.AsSpan<float>());

    public void Dispose() => _attentionScratch?.Dispose();
}
