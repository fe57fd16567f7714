using ILGPU;
using ILGPU.Runtime;
using Lowbit.Cuda.Kernels;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>
/// <see cref="LinearAddRmsNorm"/> at decode without a norm launch (<see cref="ResidualNorm"/>): the producing GEMV
/// leaves the normed row still to be scaled by 1/rms, and the backend remembers that (<see cref="_pending"/>). A
/// GEMV that reads the row takes the factor from the producer's sums (<see cref="InputFor"/>); any other reader
/// gets the row scaled first (<see cref="Settle"/>: one small launch, off the decode path); a writer makes the
/// pending row moot (<see cref="Overwritten"/>). The decisions are made on the host in call order, so a recorded
/// step replays them as made.
/// </summary>
public sealed partial class CudaBackend
{
    /// <summary>Two sets of <see cref="ResidualNorm.Slots"/> sums; the producers alternate between them, each zeroing
    /// the other for the next; <see cref="Embedding"/> (the start of every forward pass, recorded steps included)
    /// zeroes both and starts at set 0, so a pass with an odd number of producers replays correctly too.</summary>
    private readonly MemoryBuffer1D<double, Stride1D.Dense> _normSums;
    private int _normSet;
    private PendingNorm _pending;
    private NormScale? _normScale;

    /// <summary>A row a <see cref="ResidualNorm"/> wrote, still to be multiplied by <see cref="Scale"/>'s factor.</summary>
    private struct PendingNorm
    {
        public bool On;
        public TensorView View;
        public InputScale Scale;
    }

    public void LinearAddRmsNorm(TensorView x, IWeight weight, TensorView residual, Tensor normWeight, float eps, TensorView normed)
    {
        if (GemvAddsIntoResidual(x, weight, residual, normWeight, normed))
        {
            Settle(x);
            // The sums a pending row on another view needs are about to be zeroed: scale it now.
            if (_pending.On && !SameView(_pending.View, normed))
                Settle(_pending.View);
            _pending.On = false;
            ArrayView<double> sums = NormSums(_normSet), next = NormSums(_normSet ^ 1);
            var norm = new ResidualNorm
            {
                Residual = F32(residual),
                Weight = Words(normWeight).Cast<float>(),
                Normed = F32(normed),
                Sums = sums,
                Next = next,
                On = 1,
            };
            if (DenseVectors(x, weight) is { } dense)
                _linear.Launch(_stream, F32(x), Words(dense), F32(normed), 1, weight.OutFeatures, weight.InFeatures, DenseElements.Code(dense.DType), vectorLoads: true, norm);
            else
                PackedLinear(x, weight, normed, norm);
            _pending = new PendingNorm
            {
                On = true,
                View = normed,
                Scale = new InputScale { Sums = sums, InverseWidth = 1f / normed.Columns, Eps = eps, On = 1 },
            };
            _normSet ^= 1;
            return;
        }
        Linear(x, weight, normed);
        if (Skips(DecodeOps.Norms, residual.Rows))
            return;
        Settle(residual);
        ArrayView<float> rs = F32(residual), ns = F32(normed), ws = Words(normWeight).Cast<float>();
        _rmsNorm.Launch(_stream, rs, ns, ws, ns, residual.Rows, residual.Columns, eps, Aligned(rs) && Aligned(ns) && Aligned(ws));
    }

    /// <summary>True when a decode GEMV adds into <paramref name="residual"/> and norms it itself: one aligned row,
    /// the weight's width throughout, an F32 norm weight, a format whose GEMV has the epilogue (int4wo-G only on
    /// tensor cores: the ILGPU int4 GEMV has none, see Int4GroupedGemv).</summary>
    private bool GemvAddsIntoResidual(TensorView x, IWeight weight, TensorView residual, Tensor normWeight, TensorView normed)
    {
        int n = weight.OutFeatures;
        if (x.Rows != 1 || residual.Rows != 1 || normed.Rows != 1 || residual.Columns != n || normed.Columns != n
            || normWeight.DType != DType.F32 || normWeight.ElementCount != n || !Aligned(F32(x)))
            return false;
        return DenseVectors(x, weight) is not null || PackedWeight(weight) is { } w && (w.Format is CudaFormat.Int8PerRow or CudaFormat.Int8Dynamic
            or CudaFormat.Float8PerRow || w.Format == CudaFormat.Int4Grouped && Int4GemvOnTensorCores(w.InFeatures, w.GroupSize));
    }

    private ArrayView<double> NormSums(int set) => _normSums.View.SubView(set * ResidualNorm.Slots, ResidualNorm.Slots);

    /// <summary>The input scale for GEMVs of <paramref name="weights"/> reading <paramref name="x"/>: the pending
    /// norm's when x is its row and every weight's GEMV applies it (dense with vector loads, int8wo, fp8wo, int4wo-G on
    /// tensor cores); otherwise none, with a pending row under x scaled first.</summary>
    private InputScale InputFor(TensorView x, params ReadOnlySpan<IWeight> weights)
    {
        if (!_pending.On || !Overlaps(_pending.View, x))
            return default;
        bool applies = SameView(_pending.View, x) && x.Rows == 1 && Aligned(F32(x));
        foreach (var weight in weights)
            applies &= TakesInputScale(x, weight);
        if (applies)
            return _pending.Scale;
        Settle(x);
        return default;
    }

    private bool TakesInputScale(TensorView x, IWeight weight) =>
        DenseVectors(x, weight) is not null || PackedWeight(weight) is { } w && (w.Format is CudaFormat.Int8PerRow or CudaFormat.Float8PerRow
            || w.Format == CudaFormat.Int4Grouped && Int4GemvOnTensorCores(w.InFeatures, w.GroupSize));

    /// <summary>Before <paramref name="read"/> is read by anything but a scaling GEMV: a pending row under it is
    /// scaled in place.</summary>
    private void Settle(TensorView read)
    {
        if (!_pending.On || !Overlaps(_pending.View, read))
            return;
        (_normScale ??= new NormScale(_accelerator)).Launch(_stream, F32(_pending.View), _pending.Scale);
        _pending.On = false;
    }

    /// <summary>After <paramref name="written"/> is written: a pending row under it is gone.</summary>
    private void Overwritten(TensorView written)
    {
        if (_pending.On && Overlaps(_pending.View, written))
            _pending.On = false;
    }

    private static bool SameView(TensorView a, TensorView b) => a.Data == b.Data && a.Rows == b.Rows && a.Columns == b.Columns && a.DType == b.DType;

    private static bool Overlaps(TensorView a, TensorView b) =>
        a.Data < b.Data + (nint)(b.ElementCount * b.DType.Size()) && b.Data < a.Data + (nint)(a.ElementCount * a.DType.Size());
}
