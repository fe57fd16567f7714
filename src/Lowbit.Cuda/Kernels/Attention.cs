using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>What one attention launch covers (a struct: ILGPU passes it by value).</summary>
public struct AttentionShape
{
    public int Heads, KvHeads, HeadDim, StartPos, MaxSequence;
    public float Scale;
}

/// <summary>
/// Causal grouped-query attention (as Backends/Cpu/Attention.cs): query row r (position p = startPos + r),
/// head h, kv head g = h / (heads / kvHeads): out = Σ_t softmax_t(q·k_t · 1/√D) v_t over t ≤ p.
/// One group of 128 threads per (row, head): scores t = thread, thread + 128, ... into a global scratch row
/// [rows·heads, maxSeq], group max and sum by warp shuffles, then thread d sums over t for output d.
/// Shapes: q and out [rows, heads·D]; K and V caches [maxSeq, kvHeads·D]. Decode at 4k context, 32 heads,
/// D 128: 2×4 MB of cache read, ~5 us at the roofline; this first version reads V with D of 128 threads
/// busy and is far from it (flash-decoding splits over t next).
/// </summary>
public sealed class Attention
{
    public const int GroupSize = 128;
    private readonly Action<KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape> _kernel;

    public Attention(Accelerator accelerator) =>
        _kernel = accelerator.LoadStreamKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, AttentionShape>(Kernel);

    /// <param name="scores">Scratch [rows·heads, maxSequence].</param>
    public void Launch(ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> scores, ArrayView<float> output, int rows, AttentionShape shape) =>
        _kernel(new KernelConfig(rows * shape.Heads, GroupSize), q, keys, values, scores, output, shape);

    private static void Kernel(ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> scores, ArrayView<float> output, AttentionShape s)
    {
        var shared = SharedMemory.Allocate<float>(32);
        int g = Grid.IdxX;
        int r = g / s.Heads, h = g - r * s.Heads;
        int kvHead = h / (s.Heads / s.KvHeads);
        int length = s.StartPos + r + 1;
        int d = s.HeadDim, kvColumns = s.KvHeads * s.HeadDim;
        long qRow = (long)r * s.Heads * d + h * d;
        long scoreRow = (long)g * s.MaxSequence;

        float best = float.NegativeInfinity;
        for (int t = Group.IdxX; t < length; t += Group.DimX)
        {
            long k = (long)t * kvColumns + kvHead * d;
            float dot = 0f;
            for (int i = 0; i < d; i++)
                dot += q[qRow + i] * keys[k + i];
            dot *= s.Scale;
            scores[scoreRow + t] = dot;
            best = MathF.Max(best, dot);
        }
        best = BlockReduce.Max(best, shared);

        float sum = 0f;
        for (int t = Group.IdxX; t < length; t += Group.DimX)
        {
            float e = FastMath.Exp(scores[scoreRow + t] - best);
            scores[scoreRow + t] = e;
            sum += e;
        }
        // The barriers inside the reduction also make every thread's scores visible to the group.
        sum = BlockReduce.Sum(sum, shared);
        float inverse = 1f / sum;

        for (int i = Group.IdxX; i < d; i += Group.DimX)
        {
            long v = (long)kvHead * d + i;
            float acc = 0f;
            for (int t = 0; t < length; t++)
                acc += scores[scoreRow + t] * values[(long)t * kvColumns + v];
            output[qRow + i] = acc * inverse;
        }
    }
}
