using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>What one attention launch covers (a struct: ILGPU passes it by value).</summary>
public struct AttentionShape
{
    public int Heads, KvHeads, HeadDim, MaxSequence;
    public float Scale;

    /// <summary>Decode: groups a kv head's chunks are shared out over (set by <see cref="Attention.Launch"/>).</summary>
    public int Blocks;
}

/// <summary>
/// Causal grouped-query attention (as Backends/Cpu/Attention.cs): query row r (position p = start + r),
/// head h, kv head g = h / (heads / kvHeads): out = Σ_t softmax_t(q·k_t · 1/√D) v_t over t ≤ p.
/// Shapes: q and out [rows, heads·D]; K and V caches [maxSeq, kvHeads·D], f32 or bf16 (<see cref="IKvElements"/>: one
/// instance of each kernel a cache type).
/// <para>Decode (one row), flash-decoding: the cache is cut into chunks of <see cref="Chunk"/> positions; a
/// group of 256 threads takes chunks b, b + B, ... of one kv head (B = min(<see cref="AttentionShape.Blocks"/>,
/// chunks used)) for all the query heads sharing it, so K and V are read once. Warp w takes positions w, w + 8,
/// w + 16, w + 24 of each chunk, loads their key and value rows together and keeps scores, online softmax
/// (running max and sum) and Σ p·v in registers (four heads at a time); the group's warps meet once in shared
/// memory. With one group (up to 32 positions) that writes the output; otherwise the kv head's last group to
/// finish merges the groups' sums (rescaling by e^(m_b − M)). The grid (kvHeads · Blocks) depends neither on the
/// position, so a recorded step replays it at every position, nor on the cache length (groups past the work
/// return at once). Decode at 4k context, 8 kv heads, D 128 in F32: 2 × 16 MB of cache a layer; at short
/// contexts it is latency-bound (a bf16 cache halves the bytes).</para>
/// <para>Prefill (several rows), flash attention: a group of 128 threads takes <see cref="FlashRows"/> query
/// rows of one head and walks the keys up to its last row's position in tiles of <see cref="FlashKeys"/>,
/// K and V staged in shared memory; each row keeps its running max and sum (online softmax) and its output
/// in registers, so no score leaves the chip. Work grows with the causal length, so the longest tiles start
/// first. Shapes the kernels do not take (D &gt; 128 or not a multiple of 4, more than 16 query heads a kv head
/// in decode) fall back to one group per (row, head) with scores in a global scratch row.</para>
/// </summary>
public sealed class Attention
{
    public const int GroupSize = 128;

    /// <summary>Cache positions a decode group of <see cref="DecodeGroupSize"/> threads takes: small, so each
    /// warp walks only four positions one after another (at short contexts the kernel is latency-bound: 64
    /// positions over 4 warps measured 25 us a layer).</summary>
    public const int Chunk = 32, DecodeGroupSize = 256;

    /// <summary>Warps of a decode group, and query heads a decode warp carries in registers at once (more heads a
    /// kv head take further passes over the group's chunks).</summary>
    private const int DecodeWarps = DecodeGroupSize / 32, HeadsPerPass = 4;

    /// <summary>Decode groups a kv head's chunks go to at most: enough for two groups an SM at 8 kv heads.</summary>
    private const int MaxBlocks = 64;

    /// <summary>Limits of the decode kernel's shared memory: the group's queries (heads/kvHeads · D floats)
    /// and its scores (heads/kvHeads · Chunk floats).</summary>
    public const int MaxGroupQueryFloats = 2048, MaxGroupHeads = 16;

    /// <summary>The decode kernel holds a key row in four registers a lane; a flash thread holds four
    /// 16-byte columns of an output row.</summary>
    public const int MaxHeadDim = 128;

    /// <summary>A flash group's query rows and key tile: 128 threads, eight a row (each with four keys of the
    /// tile and four 16-byte output columns); 43.5 KB of shared memory at D = 128.</summary>
    public const int FlashRows = 16, FlashKeys = 32, FlashGroupSize = 128;

    /// <summary>Float4s a row of Q and K takes in shared memory: padded by one so the eight keys a warp reads
    /// at once fall in different banks.</summary>
    private const int FlashStride = (MaxHeadDim / 4) + 1;

    /// <summary>Floats a row of probabilities takes in shared memory (padded: the warp's four rows in
    /// different banks).</summary>
    private const int ProbabilityStride = FlashKeys + 4;

    // One instance of each kernel a KV cache element type (IKvElements), compiled on first use.
    private readonly KvKernels _fallback = new(), _decode = new(), _flash = new();
    private readonly Accelerator _accelerator;
    private readonly int _multiprocessors;

    public Attention(Accelerator accelerator)
    {
        _accelerator = accelerator;
        _multiprocessors = accelerator.NumMultiprocessors;
    }

    /// <summary>Chunks the decode kernel cuts a cache of <paramref name="maxSequence"/> positions into.</summary>
    public static int Chunks(int maxSequence) => (maxSequence + Chunk - 1) / Chunk;

    /// <summary>Decode groups a kv head's chunks are shared out over: one group an SM over all kv heads for caches up
    /// to 4096 positions, two for longer ones (at least four, so ILGPU's CPU accelerator still merges), no more than
    /// the cache has chunks. Measured on the H100 (Llama-3-8B heads, <c>selftest --bench</c>): 16 groups a kv head
    /// beat 33 by ~1.4 us up to position 512 and tie at 2048, where at 8000 33 are 19% faster; the grid cannot
    /// follow the position (a recorded step replays it), only the cache length.</summary>
    public int DecodeBlocks(AttentionShape s)
    {
        int perSm = s.MaxSequence > 4096 ? 2 : 1;
        int blocks = BlocksLimit != 0 ? BlocksLimit : Math.Clamp(((perSm * _multiprocessors) + s.KvHeads - 1) / s.KvHeads, 4, MaxBlocks);
        return Math.Min(Chunks(s.MaxSequence), blocks);
    }

    /// <summary>Decode groups a kv head at most (1 .. 64), or 0 for <see cref="DecodeBlocks"/>'s choice: for the
    /// bench's sweep (<c>lowbit selftest --bench</c>).</summary>
    public int BlocksLimit
    {
        get;
        set => field = value is >= 0 and <= MaxBlocks ? value : throw new ArgumentOutOfRangeException(nameof(value), value, $"BlocksLimit is 0 (automatic) or 1 .. {MaxBlocks}.");
    }

    /// <summary>True when the decode kernel takes this shape (its shared memory holds the group's queries).</summary>
    public static bool DecodeFits(AttentionShape s) =>
        s.HeadDim <= MaxHeadDim && s.Heads / s.KvHeads <= MaxGroupHeads && s.Heads / s.KvHeads * s.HeadDim <= MaxGroupQueryFloats;

    /// <summary>True when the flash kernel takes this shape (rows of 16-byte vectors, four a thread at most).</summary>
    public static bool FlashFits(AttentionShape s) => s.HeadDim <= MaxHeadDim && s.HeadDim % 4 == 0;

    /// <summary>Scratch floats <see cref="Launch"/> needs for <paramref name="rows"/> query rows (at least one); the flash
    /// kernel needs none, but it takes only <paramref name="aligned"/> operands (the fallback's scores row otherwise).</summary>
    public long Scratch(AttentionShape s, int rows, bool aligned) =>
        rows == 1 && DecodeFits(s) ? (long)s.Heads * DecodeBlocks(s) * (s.HeadDim + 2)
        : rows > 1 && aligned && FlashFits(s) ? 1
        : (long)rows * s.Heads * s.MaxSequence;

    /// <param name="scratch"><see cref="Scratch"/> floats.</param>
    /// <param name="tickets">[kvHeads] zeros (decode counts its finished chunk groups there and leaves zeros).</param>
    /// <param name="inputs">The step's [token, position] (read only when <paramref name="start"/> says so).</param>
    /// <param name="aligned">q, the caches and the output start on 16-byte boundaries (the flash kernel's
    /// vector loads need it).</param>
    public void Launch<TKv>(AcceleratorStream stream, ArrayView<float> q, TKv keys, TKv values, ArrayView<float> scratch,
        ArrayView<int> tickets, ArrayView<float> output, int rows, ArrayView<int> inputs, StepPosition start, AttentionShape shape, bool aligned)
        where TKv : struct, IKvElements
    {
        if (rows == 1 && DecodeFits(shape))
        {
            // No rope: the kernel instance without it never reads these views.
            Decode(stream, q, keys, values, scratch, tickets, output, inputs, start, shape, new DecodeRope { K = q, V = q, Cos = q, Sin = q }, rotate: false);
        }
        else if (rows > 1 && aligned && FlashFits(shape))
        {
            int tiles = (rows + FlashRows - 1) / FlashRows;
            var flash = _flash.Get<TKv, Action<AcceleratorStream, KernelConfig, ArrayView<Float4>, TKv, TKv, ArrayView<Float4>, int, ArrayView<int>, StepPosition, AttentionShape>>(
                () => _accelerator.LoadKernel<ArrayView<Float4>, TKv, TKv, ArrayView<Float4>, int, ArrayView<int>, StepPosition, AttentionShape>(FlashKernel));
            flash(stream, new KernelConfig(tiles * shape.Heads, FlashGroupSize), q.Cast<Float4>(), keys, values, output.Cast<Float4>(), rows, inputs, start, shape);
        }
        else
        {
            var fallback = _fallback.Get<TKv, Action<AcceleratorStream, KernelConfig, ArrayView<float>, TKv, TKv, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape>>(
                () => _accelerator.LoadKernel<ArrayView<float>, TKv, TKv, ArrayView<float>, ArrayView<float>, ArrayView<int>, StepPosition, AttentionShape>(FallbackKernel));
            fallback(stream, new KernelConfig(rows * shape.Heads, GroupSize), q, keys, values, scratch, output, inputs, start, shape);
        }
    }

    /// <summary>
    /// Decode attention with the step's rotary embedding and cache append folded in (one launch a layer fewer): q and
    /// the new k and v rows as the q/k/v projections left them. The kernel rotates q as it stages it, and the group
    /// that walks the chunk of the step's position rotates k into that cache row and stores v there before it reads
    /// the chunk (no other group reads the row). <see cref="DecodeFits"/> and an even D.
    /// </summary>
    /// <param name="cos">[maxPos, D/2]; so is sin.</param>
    public void LaunchDecodeWithRope<TKv>(AcceleratorStream stream, ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> cos, ArrayView<float> sin,
        TKv keys, TKv values, ArrayView<float> scratch, ArrayView<int> tickets, ArrayView<float> output, ArrayView<int> inputs,
        StepPosition start, AttentionShape shape)
        where TKv : struct, IKvElements
    {
        if (!DecodeFits(shape) || shape.HeadDim % 2 != 0)
            throw new ArgumentException($"Decode attention with rope needs an even D of at most {MaxHeadDim} and at most {MaxGroupHeads} query heads a kv head.", nameof(shape));
        Decode(stream, q, keys, values, scratch, tickets, output, inputs, start, shape, new DecodeRope { K = k, V = v, Cos = cos, Sin = sin }, rotate: true);
    }

    /// <summary>The decode kernel's launch: the grid of <see cref="DecodeBlocks"/> groups a kv head, the scratch cut into
    /// the groups' partial sums and their (max, total) stats.</summary>
    private void Decode<TKv>(AcceleratorStream stream, ArrayView<float> q, TKv keys, TKv values, ArrayView<float> scratch,
        ArrayView<int> tickets, ArrayView<float> output, ArrayView<int> inputs, StepPosition start, AttentionShape shape, DecodeRope rope, bool rotate)
        where TKv : struct, IKvElements
    {
        shape.Blocks = DecodeBlocks(shape);
        long partials = (long)shape.Heads * shape.Blocks * shape.HeadDim;
        var decode = _decode.Get<TKv, Action<AcceleratorStream, KernelConfig, ArrayView<float>, TKv, TKv, ArrayView<float>, ArrayView<float>, ArrayView<float>,
            ArrayView<int>, ArrayView<int>, StepPosition, AttentionShape, DecodeRope, SpecializedValue<int>, SpecializedValue<int>>>(
            () => _accelerator.LoadKernel<ArrayView<float>, TKv, TKv, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<int>,
                StepPosition, AttentionShape, DecodeRope, SpecializedValue<int>, SpecializedValue<int>>(DecodeKernel));
        decode(stream, new KernelConfig(shape.KvHeads * shape.Blocks, DecodeGroupSize), q, keys, values, scratch.SubView(0, partials),
            scratch.SubView(partials, 2L * shape.Heads * shape.Blocks), output, tickets, inputs, start, shape, rope,
            SpecializedValue.New(shape.HeadDim), SpecializedValue.New(rotate ? 1 : 0));
    }

    /// <summary>The rotary embedding a decode launch applies (<see cref="LaunchDecodeWithRope"/>): the new k and v rows
    /// [kvHeads·D] and the cos/sin tables [maxPos, D/2].</summary>
    public struct DecodeRope
    {
        public ArrayView<float> K, V, Cos, Sin;

        /// <summary>Element e of a head row x (at <paramref name="at"/>) rotated to position p (rotate-half, as Rope).</summary>
        public readonly float Rotate(ArrayView<float> x, long at, int e, int d, int p)
        {
            int half = d / 2, j = e < half ? e : e - half;
            long table = ((long)p * half) + j;
            float c = Cos[table], sn = Sin[table], x0 = x[at + e];
            return e < half ? (x0 * c) - (x[at + e + half] * sn) : (x0 * c) + (x[at + e - half] * sn);
        }
    }

    private static void DecodeKernel<TKv>(ArrayView<float> q, TKv keys, TKv values, ArrayView<float> sums,
        ArrayView<float> stats, ArrayView<float> output, ArrayView<int> tickets, ArrayView<int> inputs, StepPosition start, AttentionShape s,
        DecodeRope rope, SpecializedValue<int> headDim, SpecializedValue<int> rotate)
        where TKv : struct, IKvElements
    {
        var last = SharedMemory.Allocate<int>(1);
        var queries = SharedMemory.Allocate<float>(MaxGroupQueryFloats);
        // Each warp's unnormalised Σ p·v, running max and Σ p for the pass's heads, for the group's merge.
        var warpSums = SharedMemory.Allocate<float>(DecodeWarps * HeadsPerPass * MaxHeadDim);
        var warpMax = SharedMemory.Allocate<float>(DecodeWarps * HeadsPerPass);
        var warpTotal = SharedMemory.Allocate<float>(DecodeWarps * HeadsPerPass);
        var weights = SharedMemory.Allocate<float>(MaxGroupHeads * MaxBlocks);
        int g = Grid.IdxX / s.Blocks, b = Grid.IdxX - g * s.Blocks;
        int length = start.Resolve(inputs) + 1;
        int used = (length + Chunk - 1) / Chunk, blocks = Math.Min(s.Blocks, used);
        if (b >= blocks)
            return;
        // D is a compile-time constant of the kernel (specialized per head size), so the lane masks below fold away.
        int group = s.Heads / s.KvHeads, d = headDim.Value, kvColumns = s.KvHeads * d, h0 = g * group;
        int lane = Warp.LaneIdx, w = Warp.WarpIdx, p = length - 1;
        for (int i = Group.IdxX; i < group * d; i += Group.DimX)
        {
            int head = i / d, e = i - (head * d);
            queries[i] = rotate.Value != 0 ? rope.Rotate(q, (long)(h0 + head) * d, e, d, p) : q[(h0 * d) + i];
        }
        // Folded rope: the group that walks position p's chunk appends the step's k (rotated) and v to the cache
        // first; the barrier below makes the row visible to the group's loads.
        if (rotate.Value != 0 && b == (p / Chunk) % blocks)
        {
            long row = ((long)p * kvColumns) + (g * d);
            for (int e = Group.IdxX; e < d; e += Group.DimX)
            {
                keys.Store(row + e, rope.Rotate(rope.K, (long)g * d, e, d, p));
                values.Store(row + e, rope.V[(g * d) + e]);
            }
        }
        Group.Barrier();

        for (int first = 0; first < group; first += HeadsPerPass)
        {
            // Warp w takes positions w, w + 8, w + 16 and w + 24 of each chunk: their key and value rows (up to four
            // elements a lane) are loaded together, then scores and online softmax stay in registers.
            var state = PassState.Empty;
            Float4 q0 = Query(queries, first, d, lane), q1 = first + 1 < group ? Query(queries, first + 1, d, lane) : default;
            Float4 q2 = first + 2 < group ? Query(queries, first + 2, d, lane) : default, q3 = first + 3 < group ? Query(queries, first + 3, d, lane) : default;
            for (int c = b; c < used; c += blocks)
            {
                int t0 = c * Chunk, n = Math.Min(length - t0, Chunk);
                if (w >= n)
                    continue;
                long at = ((long)t0 * kvColumns) + (g * d);
                // Positions past the chunk's n read its last row (no branch around the loads) and are masked by Valid.
                int b2 = Math.Min(w + 8, n - 1), b3 = Math.Min(w + 16, n - 1), b4 = Math.Min(w + 24, n - 1);
                var rows = new ChunkRows
                {
                    Ka = RowElements(keys, at + ((long)w * kvColumns), d, lane),
                    Kb = RowElements(keys, at + ((long)b2 * kvColumns), d, lane),
                    Kc = RowElements(keys, at + ((long)b3 * kvColumns), d, lane),
                    Kd = RowElements(keys, at + ((long)b4 * kvColumns), d, lane),
                    Va = RowElements(values, at + ((long)w * kvColumns), d, lane),
                    Vb = RowElements(values, at + ((long)b2 * kvColumns), d, lane),
                    Vc = RowElements(values, at + ((long)b3 * kvColumns), d, lane),
                    Vd = RowElements(values, at + ((long)b4 * kvColumns), d, lane),
                    Valid = Math.Min(4, ((n - w) + 7) / 8),
                };
                state = state.Update(rows, q0, q1, q2, q3, s.Scale, lane);
            }
            state.Stage(warpSums, warpMax, warpTotal, w, d, lane);
            Group.Barrier();

            // The warps' shares rescaled to the group's max: the output when one group has the kv head (short
            // contexts), otherwise this group's sums and stats for the merge.
            int heads = Math.Min(HeadsPerPass, group - first);
            for (int e = Group.IdxX; e < heads * d; e += Group.DimX)
            {
                int h = e / d, column = e - (h * d);
                float best = float.NegativeInfinity;
                for (int j = 0; j < DecodeWarps; j++)
                    best = MathF.Max(best, warpMax[(j * HeadsPerPass) + h]);
                float total = 0f, sum = 0f;
                for (int j = 0; j < DecodeWarps; j++)
                {
                    float weight = FastMath.Exp(warpMax[(j * HeadsPerPass) + h] - best);
                    total += weight * warpTotal[(j * HeadsPerPass) + h];
                    sum += weight * warpSums[(((j * HeadsPerPass) + h) * MaxHeadDim) + column];
                }
                int head = h0 + first + h;
                if (blocks == 1)
                {
                    output[((long)head * d) + column] = sum / total;
                }
                else
                {
                    long slot = ((long)head * s.Blocks) + b;
                    sums[(slot * d) + column] = sum;
                    if (column == 0)
                    {
                        stats[2 * slot] = best;
                        stats[(2 * slot) + 1] = total;
                    }
                }
            }
            Group.Barrier();
        }
        if (blocks == 1)
            return;

        // The kv head's last group to finish merges the groups' sums (no second launch): each thread's writes are
        // fenced device-wide before the group takes a ticket, and the last ticket resets the count for the next
        // launch (threadFenceReduction's pattern).
        MemoryFence.DeviceLevel();
        Group.Barrier();
        if (Group.IdxX == 0)
            last[0] = Atomic.Add(ref tickets[g], 1) == blocks - 1 ? 1 : 0;
        Group.Barrier();
        if (last[0] == 0)
            return;
        if (Group.IdxX == 0)
            tickets[g] = 0;
        MemoryFence.DeviceLevel();
        // Each group's weight e^(m_b − M) / Σ_b' e^(m_b' − M)·l_b', a warp a head.
        for (int h = w; h < group; h += DecodeWarps)
        {
            long firstStat = 2L * (h0 + h) * s.Blocks;
            float best = float.NegativeInfinity;
            for (int j = lane; j < blocks; j += Warp.WarpSize)
                best = MathF.Max(best, stats[firstStat + (2 * j)]);
            best = Warp.Shuffle(BlockReduce.WarpMax(best), 0);
            float total = 0f;
            for (int j = lane; j < blocks; j += Warp.WarpSize)
                total += FastMath.Exp(stats[firstStat + (2 * j)] - best) * stats[firstStat + (2 * j) + 1];
            total = BlockReduce.WarpAllSum(total);
            for (int j = lane; j < blocks; j += Warp.WarpSize)
                weights[(h * MaxBlocks) + j] = FastMath.Exp(stats[firstStat + (2 * j)] - best) / total;
        }
        Group.Barrier();
        for (int e = Group.IdxX; e < group * d; e += Group.DimX)
        {
            int h = e / d;
            long row = (long)(h0 + h) * s.Blocks * d + e - (h * d);
            // Four groups' sums loaded at a time (in-order issue would otherwise wait on each load in turn).
            int wh = h * MaxBlocks, j = 0;
            float acc = 0f;
            for (; j + 3 < blocks; j += 4)
            {
                float s0 = sums[row + ((long)j * d)], s1 = sums[row + ((long)(j + 1) * d)];
                float s2 = sums[row + ((long)(j + 2) * d)], s3 = sums[row + ((long)(j + 3) * d)];
                acc += (weights[wh + j] * s0) + (weights[wh + j + 1] * s1) + (weights[wh + j + 2] * s2) + (weights[wh + j + 3] * s3);
            }
            for (; j < blocks; j++)
                acc += weights[wh + j] * sums[row + ((long)j * d)];
            output[((long)h0 * d) + e] = acc;
        }
    }

    /// <summary>Elements lane, lane + 32, lane + 64 and lane + 96 (those below D) of head h's query.</summary>
    private static Float4 Query(ArrayView<float> queries, int h, int d, int lane)
    {
        int qh = h * d;
        return new Float4
        {
            X = lane < d ? queries[qh + lane] : 0f,
            Y = lane + 32 < d ? queries[qh + lane + 32] : 0f,
            Z = lane + 64 < d ? queries[qh + lane + 64] : 0f,
            W = lane + 96 < d ? queries[qh + lane + 96] : 0f,
        };
    }

    /// <summary>A warp's four positions of a chunk: key and value rows as <see cref="RowElements"/> gives them,
    /// and how many of the four are inside the chunk (1..4).</summary>
    private struct ChunkRows
    {
        public Float4 Ka, Kb, Kc, Kd, Va, Vb, Vc, Vd;
        public int Valid;
    }

    /// <summary>One warp's online softmax for the four query heads of a pass: lane l keeps the running max and Σ p of
    /// head l / 8, and Σ p·v of every head in its four columns.</summary>
    private struct PassState
    {
        public float Max, Total;
        public Float4 A0, A1, A2, A3;

        public static PassState Empty => new() { Max = float.NegativeInfinity };

        /// <summary>The state after a chunk's rows (at least one valid: the warp skips chunks it has none of). The 16
        /// (head, row) dot products are summed across the warp in one transposed butterfly (16 shuffles, not 5 each):
        /// at each step a lane keeps the half of its values its lane bit selects and adds its partner's copy of that
        /// half, so lane l ends with the score of pair l / 2 (head l / 8, row (l / 2) mod 4) and takes one
        /// exponential for it; the heads' factors and probabilities then go to every lane by shuffles.</summary>
        public readonly PassState Update(ChunkRows r, Float4 q0, Float4 q1, Float4 q2, Float4 q3, float scale, int lane)
        {
            bool b16 = (lane & 16) != 0, b8 = (lane & 8) != 0, b4 = (lane & 4) != 0, b2 = (lane & 2) != 0;
            float e0 = Half(Dot(q0, r.Ka, 0f), Dot(q2, r.Ka, 0f), b16, 16), e1 = Half(Dot(q0, r.Kb, 0f), Dot(q2, r.Kb, 0f), b16, 16);
            float e2 = Half(Dot(q0, r.Kc, 0f), Dot(q2, r.Kc, 0f), b16, 16), e3 = Half(Dot(q0, r.Kd, 0f), Dot(q2, r.Kd, 0f), b16, 16);
            float e4 = Half(Dot(q1, r.Ka, 0f), Dot(q3, r.Ka, 0f), b16, 16), e5 = Half(Dot(q1, r.Kb, 0f), Dot(q3, r.Kb, 0f), b16, 16);
            float e6 = Half(Dot(q1, r.Kc, 0f), Dot(q3, r.Kc, 0f), b16, 16), e7 = Half(Dot(q1, r.Kd, 0f), Dot(q3, r.Kd, 0f), b16, 16);
            float f0 = Half(e0, e4, b8, 8), f1 = Half(e1, e5, b8, 8), f2 = Half(e2, e6, b8, 8), f3 = Half(e3, e7, b8, 8);
            float g0 = Half(f0, f2, b4, 4), g1 = Half(f1, f3, b4, 4);
            float score = Half(g0, g1, b2, 2);
            score = (score + Warp.ShuffleXor(score, 1)) * scale;
            bool valid = ((lane >> 1) & 3) < r.Valid;
            float top = valid ? score : float.NegativeInfinity;
            top = MathF.Max(top, Warp.ShuffleXor(top, 2));
            top = MathF.Max(top, Warp.ShuffleXor(top, 4));
            float best = MathF.Max(Max, top);
            float factor = FastMath.Exp(Max - best);
            float p = valid ? FastMath.Exp(score - best) : 0f;
            float sum = p + Warp.ShuffleXor(p, 2);
            sum += Warp.ShuffleXor(sum, 4);
            return new PassState
            {
                Max = best,
                Total = (Total * factor) + sum,
                A0 = Mix(A0, r, Warp.Shuffle(factor, 0), p, 0),
                A1 = Mix(A1, r, Warp.Shuffle(factor, 8), p, 8),
                A2 = Mix(A2, r, Warp.Shuffle(factor, 16), p, 16),
                A3 = Mix(A3, r, Warp.Shuffle(factor, 24), p, 24),
            };
        }

        /// <summary>One butterfly step: the lane keeps <paramref name="low"/> or <paramref name="high"/> as its lane bit
        /// says and adds the partner's copy of the same (the partner sends the one it does not keep).</summary>
        private static float Half(float low, float high, bool upper, int mask) =>
            (upper ? high : low) + Warp.ShuffleXor(upper ? low : high, mask);

        /// <summary>acc·factor + Σ_r p_r·v_r for the head whose probabilities sit in lanes <paramref name="lane0"/> + 2r.</summary>
        private static Float4 Mix(Float4 acc, ChunkRows r, float factor, float p, int lane0)
        {
            float pa = Warp.Shuffle(p, lane0), pb = Warp.Shuffle(p, lane0 + 2), pc = Warp.Shuffle(p, lane0 + 4), pd = Warp.Shuffle(p, lane0 + 6);
            return new Float4
            {
                X = (acc.X * factor) + (pa * r.Va.X) + (pb * r.Vb.X) + (pc * r.Vc.X) + (pd * r.Vd.X),
                Y = (acc.Y * factor) + (pa * r.Va.Y) + (pb * r.Vb.Y) + (pc * r.Vc.Y) + (pd * r.Vd.Y),
                Z = (acc.Z * factor) + (pa * r.Va.Z) + (pb * r.Vb.Z) + (pc * r.Vc.Z) + (pd * r.Vd.Z),
                W = (acc.W * factor) + (pa * r.Va.W) + (pb * r.Vb.W) + (pc * r.Vc.W) + (pd * r.Vd.W),
            };
        }

        /// <summary>Writes warp w's state for the pass's four heads to shared memory (max and total from lane 8h).</summary>
        public readonly void Stage(ArrayView<float> sums, ArrayView<float> max, ArrayView<float> total, int w, int d, int lane)
        {
            if ((lane & 7) == 0)
            {
                max[(w * HeadsPerPass) + (lane >> 3)] = Max;
                total[(w * HeadsPerPass) + (lane >> 3)] = Total;
            }
            StageSums(sums, A0, (w * HeadsPerPass) * MaxHeadDim, d, lane);
            StageSums(sums, A1, ((w * HeadsPerPass) + 1) * MaxHeadDim, d, lane);
            StageSums(sums, A2, ((w * HeadsPerPass) + 2) * MaxHeadDim, d, lane);
            StageSums(sums, A3, ((w * HeadsPerPass) + 3) * MaxHeadDim, d, lane);
        }

        private static void StageSums(ArrayView<float> sums, Float4 acc, int at, int d, int lane)
        {
            if (lane < d)
                sums[at + lane] = acc.X;
            if (lane + 32 < d)
                sums[at + lane + 32] = acc.Y;
            if (lane + 64 < d)
                sums[at + lane + 64] = acc.Z;
            if (lane + 96 < d)
                sums[at + lane + 96] = acc.W;
        }
    }

    /// <summary>Elements lane, lane + 32, lane + 64 and lane + 96 (those below D; zeros above) of the cache row at
    /// <paramref name="row"/>.</summary>
    private static Float4 RowElements<TKv>(TKv cache, long row, int d, int lane)
        where TKv : struct, IKvElements => new()
        {
            X = lane < d ? cache.Load(row + lane) : 0f,
            Y = lane + 32 < d ? cache.Load(row + lane + 32) : 0f,
            Z = lane + 64 < d ? cache.Load(row + lane + 64) : 0f,
            W = lane + 96 < d ? cache.Load(row + lane + 96) : 0f,
        };

    private static void FallbackKernel<TKv>(ArrayView<float> q, TKv keys, TKv values, ArrayView<float> scores,
        ArrayView<float> output, ArrayView<int> inputs, StepPosition start, AttentionShape s)
        where TKv : struct, IKvElements
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
                dot += q[qRow + i] * keys.Load(k + i);
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
                acc += scores[scoreRow + t] * values.Load((long)t * kvColumns + v);
            output[qRow + i] = acc * inverse;
        }
    }

    private static void FlashKernel<TKv>(ArrayView<Float4> q, TKv keys, TKv values, ArrayView<Float4> output, int rows,
        ArrayView<int> inputs, StepPosition start, AttentionShape s)
        where TKv : struct, IKvElements
    {
        var qs = SharedMemory.Allocate<Float4>(FlashRows * FlashStride);
        var ks = SharedMemory.Allocate<Float4>(FlashKeys * FlashStride);
        var vs = SharedMemory.Allocate<Float4>(FlashKeys * (MaxHeadDim / 4));
        var ps = SharedMemory.Allocate<float>(FlashRows * ProbabilityStride);
        int tiles = (rows + FlashRows - 1) / FlashRows;
        int back = Grid.IdxX / s.Heads, h = Grid.IdxX - (back * s.Heads);
        int r0 = (tiles - 1 - back) * FlashRows;
        int g = h / (s.Heads / s.KvHeads);
        int d4 = s.HeadDim / 4, qColumns = s.Heads * d4, kvColumns = s.KvHeads * d4;
        int position0 = start.Resolve(inputs);
        // The tile's queries, scaled by 1/√D (rows past the prompt repeat its last row and are not stored).
        for (int e = Group.IdxX; e < FlashRows * d4; e += Group.DimX)
        {
            int qi = e / d4, c = e - (qi * d4);
            Float4 v = q[((long)Math.Min(r0 + qi, rows - 1) * qColumns) + (h * d4) + c];
            qs[(qi * FlashStride) + c] = Scaled(v, s.Scale);
        }

        // This thread: query row i, keys slot + 8m of each tile and output columns slot + 8m (m = 0..3).
        int i = Group.IdxX / 8, slot = Group.IdxX & 7, row = r0 + i;
        int position = position0 + Math.Min(row, rows - 1);
        int end = position0 + Math.Min(r0 + FlashRows, rows);
        float best = float.NegativeInfinity, total = 0f;
        Float4 o0 = default, o1 = default, o2 = default, o3 = default;
        for (int k0 = 0; k0 < end; k0 += FlashKeys)
        {
            Group.Barrier(); // the queries are stored; the last tile's K, V and P are read
            for (int e = Group.IdxX; e < FlashKeys * d4; e += Group.DimX)
            {
                int j = e / d4, c = e - (j * d4);
                bool inside = k0 + j < end;
                long at = ((long)(k0 + j) * kvColumns) + (g * d4) + c;
                ks[(j * FlashStride) + c] = inside ? keys.Load4(at) : default;
                vs[(j * (MaxHeadDim / 4)) + c] = inside ? values.Load4(at) : default;
            }
            Group.Barrier();

            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int c = 0; c < d4; c++)
            {
                Float4 a = qs[(i * FlashStride) + c];
                s0 = Dot(a, ks[(slot * FlashStride) + c], s0);
                s1 = Dot(a, ks[((slot + 8) * FlashStride) + c], s1);
                s2 = Dot(a, ks[((slot + 16) * FlashStride) + c], s2);
                s3 = Dot(a, ks[((slot + 24) * FlashStride) + c], s3);
            }
            bool m0 = k0 + slot <= position, m1 = k0 + slot + 8 <= position, m2 = k0 + slot + 16 <= position, m3 = k0 + slot + 24 <= position;
            float top = MathF.Max(MathF.Max(m0 ? s0 : float.NegativeInfinity, m1 ? s1 : float.NegativeInfinity),
                MathF.Max(m2 ? s2 : float.NegativeInfinity, m3 ? s3 : float.NegativeInfinity));
            top = MathF.Max(top, Warp.ShuffleXor(top, 1));
            top = MathF.Max(top, Warp.ShuffleXor(top, 2));
            top = MathF.Max(top, Warp.ShuffleXor(top, 4));
            // Key 0 is in every row's first tile, so the running max is finite from the first tile on.
            float next = MathF.Max(best, top);
            float rescale = best == float.NegativeInfinity ? 0f : FastMath.Exp(best - next);
            float p0 = m0 ? FastMath.Exp(s0 - next) : 0f, p1 = m1 ? FastMath.Exp(s1 - next) : 0f;
            float p2 = m2 ? FastMath.Exp(s2 - next) : 0f, p3 = m3 ? FastMath.Exp(s3 - next) : 0f;
            float sum = p0 + p1 + p2 + p3;
            sum += Warp.ShuffleXor(sum, 1);
            sum += Warp.ShuffleXor(sum, 2);
            sum += Warp.ShuffleXor(sum, 4);
            total = (total * rescale) + sum;
            best = next;
            int pi = i * ProbabilityStride;
            ps[pi + slot] = p0;
            ps[pi + slot + 8] = p1;
            ps[pi + slot + 16] = p2;
            ps[pi + slot + 24] = p3;
            o0 = Scaled(o0, rescale);
            o1 = Scaled(o1, rescale);
            o2 = Scaled(o2, rescale);
            o3 = Scaled(o3, rescale);
            Group.Barrier();

            int n = Math.Min(FlashKeys, end - k0);
            for (int j = 0; j < n; j++)
            {
                float p = ps[pi + j];
                int v = j * (MaxHeadDim / 4);
                o0 = Fma(p, vs[v + slot], o0);
                o1 = Fma(p, vs[v + slot + 8], o1);
                o2 = Fma(p, vs[v + slot + 16], o2);
                o3 = Fma(p, vs[v + slot + 24], o3);
            }
        }
        if (row >= rows)
            return;
        float inverse = 1f / total;
        long at0 = ((long)row * qColumns) + (h * d4);
        if (slot < d4)
            output[at0 + slot] = Scaled(o0, inverse);
        if (slot + 8 < d4)
            output[at0 + slot + 8] = Scaled(o1, inverse);
        if (slot + 16 < d4)
            output[at0 + slot + 16] = Scaled(o2, inverse);
        if (slot + 24 < d4)
            output[at0 + slot + 24] = Scaled(o3, inverse);
    }

    private static Float4 Scaled(Float4 v, float f) => new() { X = v.X * f, Y = v.Y * f, Z = v.Z * f, W = v.W * f };

    private static Float4 Fma(float p, Float4 v, Float4 acc) =>
        new() { X = (p * v.X) + acc.X, Y = (p * v.Y) + acc.Y, Z = (p * v.Z) + acc.Z, W = (p * v.W) + acc.W };

    private static float Dot(Float4 a, Float4 b, float acc) => (a.X * b.X) + (a.Y * b.Y) + (a.Z * b.Z) + (a.W * b.W) + acc;
}
