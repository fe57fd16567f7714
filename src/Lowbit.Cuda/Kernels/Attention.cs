using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>What one attention launch covers (a struct: ILGPU passes it by value).</summary>
public struct AttentionShape
{
    public int Heads, KvHeads, HeadDim, MaxSequence;
    public float Scale;
}

/// <summary>
/// Causal grouped-query attention (as Backends/Cpu/Attention.cs): query row r (position p = start + r),
/// head h, kv head g = h / (heads / kvHeads): out = Σ_t softmax_t(q·k_t · 1/√D) v_t over t ≤ p.
/// Shapes: q and out [rows, heads·D]; K and V caches [maxSeq, kvHeads·D].
/// <para>Decode (one row), flash-decoding: the cache is cut into chunks of <see cref="Chunk"/> positions and
/// one group of 256 threads takes a (kv head, chunk) for all the query heads sharing that kv head, so K and V
/// are read once: scores through warp dot products, the chunk's max and sum of exponentials, and its
/// unnormalised Σ p·v; a second kernel merges the chunks (rescaling by e^(m_c − M)). The grid covers the
/// whole cache and chunks past the position return at once, so the launch does not depend on the position
/// (a recorded step replays it at every position). Decode at 4k context, 8 kv heads, D 128 in F32: 2 × 16 MB
/// of cache a layer; at short contexts it is launch-bound.</para>
/// <para>Prefill (several rows) runs the same two kernels with a row dimension: each query row is a decode
/// step at its own causal length. Shapes the decode kernel does not take (D &gt; 128, more than 16 query
/// heads a kv head) fall back to one group per (row, head) with scores in a global scratch row.</para>
/// </summary>
public sealed class Attention
{
    public const int GroupSize = 128;

    /// <summary>Cache positions a decode group of <see cref="DecodeGroupSize"/> threads takes: small, so each
    /// warp walks only four positions one after another (at short contexts the kernel is latency-bound: 64
    /// positions over 4 warps measured 25 us a layer).</summary>
    public const int Chunk = 32, DecodeGroupSize = 256;

    /// <summary>Limits of the decode kernel's shared memory: the group's queries (heads/kvHeads · D floats)
    /// and its scores (heads/kvHeads · Chunk floats).</summary>
    public const int MaxGroupQueryFloats = 2048, MaxGroupHeads = 16;

    /// <summary>The decode kernel holds a key row in four registers a lane.</summary>
    public const int MaxHeadDim = 128;

    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape> _prefill;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape> _decode;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape> _merge;

    public Attention(Accelerator accelerator)
    {
        _prefill = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape>(PrefillKernel);
        _decode = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape>(DecodeKernel);
        _merge = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape>(MergeKernel);
    }

    /// <summary>Chunks the decode kernel cuts a cache of <paramref name="maxSequence"/> positions into.</summary>
    public static int Chunks(int maxSequence) => (maxSequence + Chunk - 1) / Chunk;

    /// <summary>True when the decode kernel takes this shape (its shared memory holds the group's queries).</summary>
    public static bool DecodeFits(AttentionShape s) =>
        s.HeadDim <= MaxHeadDim && s.Heads / s.KvHeads <= MaxGroupHeads && s.Heads / s.KvHeads * s.HeadDim <= MaxGroupQueryFloats;

    /// <summary>Most scratch floats the chunked kernel takes at once (256 MB): a long prompt runs in batches of rows.</summary>
    private const long MaxScratchFloats = 64L << 20;

    /// <summary>Query rows one chunked launch takes: per (row, head, chunk) D partial sums and the chunk's max
    /// and sum must fit <see cref="MaxScratchFloats"/>.</summary>
    public static int RowsPerLaunch(AttentionShape s) =>
        (int)Math.Max(1, MaxScratchFloats / ((long)s.Heads * Chunks(s.MaxSequence) * (s.HeadDim + 2)));

    /// <summary>Scratch floats <see cref="Launch"/> needs for <paramref name="rows"/> query rows.</summary>
    public static long Scratch(AttentionShape s, int rows) => DecodeFits(s)
        ? (long)Math.Min(rows, RowsPerLaunch(s)) * s.Heads * Chunks(s.MaxSequence) * (s.HeadDim + 2)
        : (long)rows * s.Heads * s.MaxSequence;

    /// <param name="scratch"><see cref="Scratch"/> floats.</param>
    /// <param name="inputs">The step's [token, position] (read only when <paramref name="start"/> says so).</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> scratch,
        ArrayView<float> output, int rows, ArrayView<int> inputs, StepPosition start, AttentionShape shape)
    {
        if (!DecodeFits(shape))
        {
            _prefill(stream, new KernelConfig(rows * shape.Heads, GroupSize), q, keys, values, scratch, output, inputs, start, shape);
            return;
        }
        // Every query row as a decode step of its own (its causal length start + r + 1), batches of rows so the
        // partial sums fit the scratch: at 2048 prompt tokens this replaced the per-(row, head) kernel, whose
        // scores went through global memory (prefill 1582 tok/s on Llama-3-8B shapes, attention-bound).
        int chunks = Chunks(shape.MaxSequence), batch = RowsPerLaunch(shape), width = shape.Heads * shape.HeadDim;
        for (int r0 = 0; r0 < rows; r0 += batch)
        {
            int n = Math.Min(batch, rows - r0);
            long partials = (long)n * shape.Heads * chunks * shape.HeadDim;
            var sums = scratch.SubView(0, partials);
            var stats = scratch.SubView(partials, 2L * n * shape.Heads * chunks);
            var at = new StepPosition { Start = start.Start + r0, FromInputs = start.FromInputs };
            var qs = q.SubView((long)r0 * width, (long)n * width);
            var outs = output.SubView((long)r0 * width, (long)n * width);
            _decode(stream, new KernelConfig(n * shape.KvHeads * chunks, DecodeGroupSize), qs, keys, values, sums, stats, inputs, at, shape);
            _merge(stream, new KernelConfig(n * shape.Heads, GroupSize), sums, stats, outs, inputs, at, shape);
        }
    }

    private static void DecodeKernel(ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> sums,
        ArrayView<float> stats, ArrayView<int> inputs, StepPosition start, AttentionShape s)
    {
        var queries = SharedMemory.Allocate<float>(MaxGroupQueryFloats);
        var p = SharedMemory.Allocate<float>(MaxGroupHeads * Chunk);
        int chunks = Chunks(s.MaxSequence);
        int r = Grid.IdxX / (s.KvHeads * chunks), rest = Grid.IdxX - (r * s.KvHeads * chunks);
        int g = rest / chunks, c = rest - g * chunks;
        int length = start.Resolve(inputs) + r + 1;
        int t0 = c * Chunk;
        if (t0 >= length)
            return;
        int n = Math.Min(length - t0, Chunk);
        int group = s.Heads / s.KvHeads, d = s.HeadDim, kvColumns = s.KvHeads * d, h0 = g * group;
        int warps = Group.DimX / Warp.WarpSize;

        for (int i = Group.IdxX; i < group * d; i += Group.DimX)
            queries[i] = q[((long)r * s.Heads * d) + (h0 * d) + i];
        Group.Barrier();

        // Scores: a warp a position; each lane loads its (up to four) elements of k once, then one dot product
        // and shuffle reduction per head from the queries in shared memory.
        for (int j = Warp.WarpIdx; j < n; j += warps)
        {
            long k = (long)(t0 + j) * kvColumns + g * d;
            int lane = Warp.LaneIdx;
            float k0 = lane < d ? keys[k + lane] : 0f;
            float k1 = lane + 32 < d ? keys[k + lane + 32] : 0f;
            float k2 = lane + 64 < d ? keys[k + lane + 64] : 0f;
            float k3 = lane + 96 < d ? keys[k + lane + 96] : 0f;
            for (int h = 0; h < group; h++)
            {
                int qh = h * d;
                float dot = (lane < d ? queries[qh + lane] * k0 : 0f) + (lane + 32 < d ? queries[qh + lane + 32] * k1 : 0f)
                          + (lane + 64 < d ? queries[qh + lane + 64] * k2 : 0f) + (lane + 96 < d ? queries[qh + lane + 96] * k3 : 0f);
                dot = BlockReduce.WarpSum(dot);
                if (lane == 0)
                    p[h * Chunk + j] = dot * s.Scale;
            }
        }
        Group.Barrier();

        // The chunk's max and Σ e^(score − max) per head: a warp a head.
        for (int h = Warp.WarpIdx; h < group; h += warps)
        {
            float best = float.NegativeInfinity;
            for (int j = Warp.LaneIdx; j < n; j += Warp.WarpSize)
                best = MathF.Max(best, p[h * Chunk + j]);
            best = Warp.Shuffle(BlockReduce.WarpMax(best), 0);
            float sum = 0f;
            for (int j = Warp.LaneIdx; j < n; j += Warp.WarpSize)
            {
                float e = FastMath.Exp(p[h * Chunk + j] - best);
                p[h * Chunk + j] = e;
                sum += e;
            }
            sum = BlockReduce.WarpSum(sum);
            if (Warp.LaneIdx == 0)
            {
                long at = 2L * ((((long)r * s.Heads) + h0 + h) * chunks + c);
                stats[at] = best;
                stats[at + 1] = sum;
            }
        }
        Group.Barrier();

        // Σ_j p_j·v_j: threads across (head, d), so V rows are read coalesced; four rows a step, loaded before
        // they are used, so four loads are in flight.
        for (int e = Group.IdxX; e < group * d; e += Group.DimX)
        {
            int h = e / d, i = e - h * d;
            long v = (long)t0 * kvColumns + g * d + i;
            int ph = h * Chunk;
            float acc = 0f;
            int j = 0;
            for (; j + 3 < n; j += 4)
            {
                float v0 = values[v + ((long)j * kvColumns)], v1 = values[v + ((long)(j + 1) * kvColumns)];
                float v2 = values[v + ((long)(j + 2) * kvColumns)], v3 = values[v + ((long)(j + 3) * kvColumns)];
                acc += (p[ph + j] * v0) + (p[ph + j + 1] * v1) + (p[ph + j + 2] * v2) + (p[ph + j + 3] * v3);
            }
            for (; j < n; j++)
                acc += p[ph + j] * values[v + ((long)j * kvColumns)];
            sums[((((long)r * s.Heads) + h0 + h) * chunks + c) * d + i] = acc;
        }
    }

    private static void MergeKernel(ArrayView<float> sums, ArrayView<float> stats, ArrayView<float> output, ArrayView<int> inputs,
        StepPosition start, AttentionShape s)
    {
        int r = Grid.IdxX / s.Heads, h = Grid.IdxX - (r * s.Heads), d = s.HeadDim;
        int chunks = Chunks(s.MaxSequence);
        int used = (start.Resolve(inputs) + r + Chunk) / Chunk;
        long first = ((long)r * s.Heads + h) * chunks;
        float best = float.NegativeInfinity;
        for (int c = 0; c < used; c++)
            best = MathF.Max(best, stats[2 * (first + c)]);
        float total = 0f;
        for (int c = 0; c < used; c++)
            total += FastMath.Exp(stats[2 * (first + c)] - best) * stats[(2 * (first + c)) + 1];
        float inverse = 1f / total;
        for (int i = Group.IdxX; i < d; i += Group.DimX)
        {
            float acc = 0f;
            for (int c = 0; c < used; c++)
                acc += FastMath.Exp(stats[2 * (first + c)] - best) * sums[((first + c) * d) + i];
            output[((long)r * s.Heads * d) + ((long)h * d) + i] = acc * inverse;
        }
    }

    private static void PrefillKernel(ArrayView<float> q, ArrayView<float> keys, ArrayView<float> values, ArrayView<float> scores,
        ArrayView<float> output, ArrayView<int> inputs, StepPosition start, AttentionShape s)
    {
        var shared = SharedMemory.Allocate<float>(32);
        int g = Grid.IdxX;
        int r = g / s.Heads, h = g - r * s.Heads;
        int kvHead = h / (s.Heads / s.KvHeads);
        int length = start.Resolve(inputs) + r + 1;
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
