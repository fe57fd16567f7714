using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// The residual add and the next block's RMSNorm folded into the decode GEMVs on either side of it
/// (IBackend.LinearAddRmsNorm), so the norm costs no launch of its own. The GEMV that produces a block's output
/// (o or down projection) adds each output row into the residual stream, writes residual·g (the norm weight) as the
/// next block's input, still without the factor 1/rms, and adds its group's Σ residual² into one of 32 f64 slots;
/// the GEMVs that read that input (q/k/v, gate·up, the classifier) multiply their dot products by 1/rms from the
/// slots (<see cref="InputScale"/>): W·(x·g/rms) = (W·(x·g))/rms. No fence, no ticket: the consumer is the next
/// launch. The slots are f64 so the order the atomics land in does not show in the f32 factor. Two sets of slots
/// alternate: a launch adds into one and zeroes the other, which the next producer adds into (both are zeroed
/// when a forward pass starts). Off (the default) for a plain GEMV.
/// </summary>
public struct ResidualNorm
{
    /// <summary>Slots a set has (a group adds into slot group mod 32; a consumer lane reads one).</summary>
    public const int Slots = 32;

    /// <summary>[N]: the residual stream, added to.</summary>
    public ArrayView<float> Residual;

    /// <summary>[N]: the norm weight g.</summary>
    public ArrayView<float> Weight;

    /// <summary>[N]: residual·g, the next block's input before its 1/rms.</summary>
    public ArrayView<float> Normed;

    /// <summary>[32] slots this launch adds Σ residual² into, and the [32] it zeroes for the next producer.</summary>
    public ArrayView<double> Sums, Next;

    /// <summary>1 when the GEMV adds into the residual instead of writing y.</summary>
    public int On;

    /// <summary>The GEMV kernel instance a launch takes: 1 (with the fold's code) when it adds into a residual or
    /// scales its input, 0 (plain: none of the fold's code or registers) otherwise.</summary>
    public static SpecializedValue<int> Fold(ResidualNorm norm, InputScale input) => SpecializedValue.New(norm.On != 0 || input.On != 0 ? 1 : 0);

    /// <summary>residual[row] += value, normed[row] = residual[row]·g[row]; returns residual[row]².</summary>
    public readonly float Add(int row, float value) => Add(row, value, Residual[row], Weight[row]);

    /// <summary><see cref="Add(int, float)"/> with residual[row] and g[row] already loaded (a GEMV that knows its
    /// row loads them before its loop, so the epilogue does not wait on them).</summary>
    public readonly float Add(int row, float value, float residual, float g)
    {
        float sum = residual + value;
        Residual[row] = sum;
        Normed[row] = sum * g;
        return sum * sum;
    }

    /// <summary>Every thread of the group calls it once its rows are added, with the squares it added: the group's
    /// sum goes into its slot (one atomic a group: an atomic a warp measured slower), and the first group zeroes the
    /// next producer's slots.</summary>
    /// <param name="shared">32 floats of shared memory, free for the group's sum.</param>
    public readonly void Finish(float squares, ArrayView<float> shared)
    {
        float group = BlockReduce.Sum(squares, shared);
        if (Group.IdxX == 0)
            Atomic.Add(ref Sums[Grid.IdxX & (Slots - 1)], (double)group);
        if (Grid.IdxX == 0 && Group.IdxX < Slots)
            Next[Group.IdxX] = 0.0;
    }
}

/// <summary>
/// The 1/rms a consumer GEMV scales its dot products by when its x is a <see cref="ResidualNorm"/>'s output:
/// each lane loads one slot at the start of the kernel (<see cref="Load"/>), so the load overlaps the main loop,
/// and the warp sums them after it (<see cref="Factor"/>). Off (the default): the factor is 1.
/// </summary>
public struct InputScale
{
    /// <summary>[32]: the producer's Σ residual² slots.</summary>
    public ArrayView<double> Sums;

    /// <summary>1 / N and the norm's epsilon.</summary>
    public float InverseWidth, Eps;

    public int On;

    /// <summary>This lane's slot (0 when off).</summary>
    public readonly double Load() => On != 0 ? Sums[Warp.LaneIdx & (ResidualNorm.Slots - 1)] : 0.0;

    /// <summary>1/sqrt(Σ/N + eps) from the warp's slots (every lane of the warp must call it), or 1 when off.</summary>
    public readonly float Factor(double slot)
    {
        double total = BlockReduce.WarpAllSum(slot);
        return On != 0 ? 1f / MathF.Sqrt(((float)total * InverseWidth) + Eps) : 1f;
    }
}

/// <summary>A <see cref="ResidualNorm"/> output scaled in place by its 1/rms, for a reader that cannot take an
/// <see cref="InputScale"/> (int8dq's quantizer, the host, the GEMM).</summary>
public sealed class NormScale
{
    private const int GroupSize = 256;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, InputScale> _kernel;

    public NormScale(Accelerator accelerator) =>
        _kernel = accelerator.LoadKernel<ArrayView<float>, InputScale>(Kernel);

    public void Launch(AcceleratorStream stream, ArrayView<float> normed, InputScale scale) =>
        _kernel(stream, new KernelConfig((int)((normed.Length + GroupSize - 1) / GroupSize), GroupSize), normed, scale);

    private static void Kernel(ArrayView<float> normed, InputScale scale)
    {
        float factor = scale.Factor(scale.Load());
        long i = ((long)Grid.IdxX * GroupSize) + Group.IdxX;
        if (i < normed.Length)
            normed[i] *= factor;
    }
}
