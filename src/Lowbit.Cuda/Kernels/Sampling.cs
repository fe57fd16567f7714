using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>What one sampling launch is told.</summary>
public struct SamplingArgs
{
    public float InverseTemperature, TopP, Uniform;
    public int TopK;
}

/// <summary>
/// Temperature / top-k / top-p sampling on the device, Generation/ThresholdSampling's algorithm (its reference),
/// so a sampled decode step copies one int to the host, not the logits: one group of up to 1024 threads; the
/// top-k and top-p cuts are radix selections over the logits' order-preserving 32-bit keys (four passes of a
/// byte each, a 256-bin histogram of counts or of mass in shared memory, over the candidates at or above a floor
/// found first (<see cref="Floor"/>); binary searches of 32 block reductions each cost ~1 ms a token on the H100),
/// the probabilities e^((l − max)/T) are written once to a scratch
/// row, and the draw finds the index where the cumulative mass passes uniform·(kept mass) with the whole group
/// (<see cref="Draw"/>). Sums are f32 (the reference: f64), so a uniform within ~1e-6 of a boundary may pick the
/// neighbour.
/// </summary>
public sealed class Sampling
{
    private const int MaxGroupSize = 1024;
    private readonly int _groupSize;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, SamplingArgs> _kernel;

    public Sampling(Accelerator accelerator)
    {
        _groupSize = BlockReduce.PowerOfTwoGroup(accelerator, MaxGroupSize);
        _kernel = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, int, SamplingArgs>(Kernel);
    }

    /// <param name="logits">[n].</param>
    /// <param name="probabilities">[n] scratch.</param>
    /// <param name="result">[1]: the token.</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> logits, ArrayView<float> probabilities, ArrayView<int> result, int n, SamplingArgs args) =>
        _kernel(stream, new KernelConfig(1, _groupSize), logits, probabilities, result, n, args);

    /// <summary>A float's bits as a signed key in the floats' order (negatives have their magnitude bits
    /// flipped). Signed, and the search bounds 64-bit: the unsigned keys of ThresholdSampling hung the kernel on
    /// the H100 (unsigned arithmetic in ILGPU's PTX is not to be trusted: see ILGPU-NOTES.md's sign bug).</summary>
    private static int Key(float value)
    {
        int bits = (int)Interop.FloatAsInt(value);
        return bits >= 0 ? bits : bits ^ 0x7FFFFFFF;
    }

    private const int Bins = 256;

    /// <summary>
    /// Radix select from the top: the largest key t whose count (<paramref name="counting"/>) or probability mass
    /// of elements with key ≥ t reaches <paramref name="target"/>, found a byte at a time (4 passes: a 256-bin
    /// histogram of the elements that match the bytes chosen so far, then thread 0 walks the bins from the top).
    /// Elements of probability 0 (cut by top-k) add no mass. Every thread of the group calls it and gets the key.
    /// </summary>
    private static int Select(ArrayView<float> logits, ArrayView<float> probabilities, int n, float target, bool counting, int floor,
        ArrayView<float> histogram, ArrayView<float> choice)
    {
        int t = Group.IdxX, threads = Group.DimX;
        int prefix = 0;
        float remaining = target;
        for (int shift = 24; shift >= 0; shift -= 8)
        {
            for (int b = t; b < Bins; b += threads)
                histogram[b] = 0f;
            Group.Barrier();
            int i = t;
            for (; i + (3 * threads) < n; i += 4 * threads)
            {
                var v = Strided.Four(logits, i, threads);
                Count(v.X, i, shift, prefix, floor, counting, probabilities, histogram);
                Count(v.Y, i + threads, shift, prefix, floor, counting, probabilities, histogram);
                Count(v.Z, i + (2 * threads), shift, prefix, floor, counting, probabilities, histogram);
                Count(v.W, i + (3 * threads), shift, prefix, floor, counting, probabilities, histogram);
            }
            for (; i < n; i += threads)
                Count(logits[i], i, shift, prefix, floor, counting, probabilities, histogram);
            Group.Barrier();
            if (t == 0)
            {
                float above = 0f;
                int bin = Bins - 1;
                for (; bin > 0; bin--)
                {
                    if (above + histogram[bin] >= remaining)
                        break;
                    above += histogram[bin];
                }
                choice[0] = bin;
                choice[1] = above;
            }
            Group.Barrier();
            int chosen = (int)choice[0];
            remaining -= choice[1];
            prefix |= (shift == 24 ? chosen - 128 : chosen) << shift;
            Group.Barrier(); // choice is rewritten by the next pass only once every thread has read it
        }
        return prefix;
    }

    /// <summary>Adds element i (logit l) to its bin of the pass at <paramref name="shift"/> if it is a candidate (key at or
    /// above <paramref name="floor"/>) and the bytes above match those chosen.</summary>
    private static void Count(float l, int i, int shift, int prefix, int floor, bool counting, ArrayView<float> probabilities, ArrayView<float> histogram)
    {
        int key = Key(l);
        // The bytes above this one must equal those chosen (none in the first pass).
        if (key < floor || (shift < 24 && (key >> (shift + 8)) != (prefix >> (shift + 8))))
            return;
        Atomic.Add(ref histogram[Digit(key, shift)], counting ? 1f : probabilities[i]);
    }

    /// <summary>
    /// A key below which no element can be in a selection, so <see cref="Select"/>'s histograms count only the elements
    /// at or above it: a vocabulary's logits fall in a few bins of the top byte, and shared-memory atomics on one bin
    /// serialize (a top-k selection over 128k logits took 1.1-1.6 ms). The floor is the key of max − c for the first
    /// c = T, 2T, 4T, ... whose elements at or above hold the target (their count, or their mass with a margin for
    /// the f32 sums), or the lowest key once c passes 2^13·T: each try is one pass over the row, and a step of 4 could
    /// jump from 20 candidates to 16000.
    /// </summary>
    private static int Floor(ArrayView<float> logits, ArrayView<float> probabilities, int n, float max, float temperature, float target, bool counting,
        ArrayView<float> shared)
    {
        float need = counting ? target : target * 1.001f;
        int threads = Group.DimX;
        for (float c = temperature; c < 8192f * temperature; c *= 2f)
        {
            float bound = max - c, held = 0f;
            int i = Group.IdxX;
            for (; i + (3 * threads) < n; i += 4 * threads)
            {
                var v = Strided.Four(logits, i, threads);
                held += Held(v.X, i, bound, counting, probabilities) + Held(v.Y, i + threads, bound, counting, probabilities)
                    + Held(v.Z, i + (2 * threads), bound, counting, probabilities) + Held(v.W, i + (3 * threads), bound, counting, probabilities);
            }
            for (; i < n; i += threads)
                held += Held(logits[i], i, bound, counting, probabilities);
            if (BlockReduce.Sum(held, shared) >= need)
                return Key(bound);
        }
        return int.MinValue;
    }

    /// <summary>What element i adds to the count or mass at or above <paramref name="bound"/>.</summary>
    private static float Held(float l, int i, float bound, bool counting, ArrayView<float> probabilities) =>
        l >= bound ? counting ? 1f : probabilities[i] : 0f;

    /// <summary>probabilities[i] = e^((l − max)/T) for a kept logit, 0 for one top-k cut; returns it.</summary>
    private static float Probability(float l, int i, int kept, float max, float inverseTemperature, ArrayView<float> probabilities)
    {
        float p = Key(l) >= kept ? FastMath.Exp((l - max) * inverseTemperature) : 0f;
        probabilities[i] = p;
        return p;
    }

    /// <summary>Byte <paramref name="shift"/>/8 of a key in the keys' order (the top byte is signed).</summary>
    private static int Digit(int key, int shift) => shift == 24 ? (key >> 24) + 128 : (key >> shift) & 0xFF;

    private static void Kernel(ArrayView<float> logits, ArrayView<float> probabilities, ArrayView<int> result, int n, SamplingArgs a)
    {
        var shared = SharedMemory.Allocate<float>(32);
        var histogram = SharedMemory.Allocate<float>(Bins);
        var choice = SharedMemory.Allocate<float>(3);
        int t = Group.IdxX, threads = Group.DimX;

        float max = float.NegativeInfinity;
        int at = t;
        for (; at + (3 * threads) < n; at += 4 * threads)
        {
            var v = Strided.Four(logits, at, threads);
            max = MathF.Max(max, MathF.Max(MathF.Max(v.X, v.Y), MathF.Max(v.Z, v.W)));
        }
        for (; at < n; at += threads)
            max = MathF.Max(max, logits[at]);
        max = BlockReduce.Max(max, shared);
        int kept = int.MinValue;
        float temperature = 1f / a.InverseTemperature;

        // The k-th largest logit: the largest key with at least k logits at or above it, a byte of the key a pass.
        if (a.TopK > 0 && a.TopK < n)
            kept = Select(logits, probabilities, n, a.TopK, counting: true, Floor(logits, probabilities, n, max, temperature, a.TopK, true, shared), histogram, choice);

        float total = 0f;
        at = t;
        for (; at + (3 * threads) < n; at += 4 * threads)
        {
            var v = Strided.Four(logits, at, threads);
            total += Probability(v.X, at, kept, max, a.InverseTemperature, probabilities) + Probability(v.Y, at + threads, kept, max, a.InverseTemperature, probabilities)
                + Probability(v.Z, at + (2 * threads), kept, max, a.InverseTemperature, probabilities) + Probability(v.W, at + (3 * threads), kept, max, a.InverseTemperature, probabilities);
        }
        for (; at < n; at += threads)
            total += Probability(logits[at], at, kept, max, a.InverseTemperature, probabilities);
        total = BlockReduce.Sum(total, shared); // its barriers also publish every thread's probabilities

        // The smallest top set reaching topP of the mass: the largest key whose mass at or above it reaches it.
        if (a.TopP < 1f)
            kept = Math.Max(kept, Select(logits, probabilities, n, a.TopP * total, counting: false,
                Math.Max(kept, Floor(logits, probabilities, n, max, temperature, a.TopP * total, false, shared)), histogram, choice));

        int token = Draw(logits, probabilities, n, kept, a.Uniform, shared, choice);
        if (t == 0)
            result[0] = token;
    }

    /// <summary>
    /// The first kept token (in vocabulary order) at which the cumulative kept mass passes uniform·(kept mass), the
    /// reference's walk done by the whole group: warp w sums a contiguous range of the row (coalesced, four loads in
    /// flight a lane) and one thread finds the range the target falls in; the group then cuts that range into one
    /// short run a thread, scans the runs' sums, and the thread whose run holds the target walks it. Where rounding
    /// leaves the target past the kept mass, the last kept token of the range is taken. Every thread gets the token.
    /// <paramref name="shared"/> holds a float a warp, <paramref name="draw"/> 3.
    /// </summary>
    private static int Draw(ArrayView<float> logits, ArrayView<float> probabilities, int n, int kept, float uniform, ArrayView<float> shared,
        ArrayView<float> draw)
    {
        int t = Group.IdxX, threads = Group.DimX, lane = Warp.LaneIdx, warp = Warp.WarpIdx, warps = threads / Warp.WarpSize;
        int span = (n + warps - 1) / warps, stop = Math.Min(n, (warp + 1) * span);
        float mass = 0f;
        int i = (warp * span) + lane;
        for (; i + 96 < stop; i += 128)
        {
            Float4 l = Strided.Four(logits, i, 32), p = Strided.Four(probabilities, i, 32);
            mass += (Kept(l.X, p.X, kept) + Kept(l.Y, p.Y, kept)) + (Kept(l.Z, p.Z, kept) + Kept(l.W, p.W, kept));
        }
        for (; i < stop; i += 32)
            mass += Kept(logits[i], probabilities[i], kept);
        mass = BlockReduce.WarpAllSum(mass);
        if (lane == 0)
            shared[warp] = mass;
        Group.Barrier();
        if (t == 0)
        {
            float all = 0f;
            for (int j = 0; j < warps; j++)
                all += shared[j];
            // The range holding the target; rounding past the end takes the last range with mass.
            float target = uniform * all, before = 0f, lastBefore = 0f;
            int chosen = -1, last = 0;
            for (int j = 0; j < warps; j++)
            {
                if (shared[j] > 0f)
                {
                    last = j;
                    lastBefore = before;
                    if (target < before + shared[j])
                    {
                        chosen = j;
                        break;
                    }
                }
                before += shared[j];
            }
            draw[0] = chosen < 0 ? last : chosen;
            draw[1] = chosen < 0 ? lastBefore : before;
            draw[2] = target;
        }
        Group.Barrier();
        int range = (int)draw[0];
        float start = draw[1], goal = draw[2];
        int from = range * span, to = Math.Min(n, from + span), per = (to - from + threads - 1) / threads;
        int runFrom = from + (t * per), runTo = Math.Min(to, runFrom + per), lastKept = -1;
        float run = 0f;
        for (int j = runFrom; j < runTo; j++)
        {
            float l = logits[j];
            run += Kept(l, probabilities[j], kept);
            if (Key(l) >= kept)
                lastKept = j;
        }
        // Only the thread whose run holds the target branches into its walk below; ILGPU would take run for uniform.
        run = Uniformity.Divergent(run);
        // Inclusive scan of the runs' sums: within the warp by shuffles, then the warps' totals before this one.
        float inclusive = ScanStep(run, 1, lane);
        inclusive = ScanStep(inclusive, 2, lane);
        inclusive = ScanStep(inclusive, 4, lane);
        inclusive = ScanStep(inclusive, 8, lane);
        inclusive = ScanStep(inclusive, 16, lane);
        Group.Barrier(); // every thread has read draw and shared before they are rewritten
        if (lane == 31)
            shared[warp] = inclusive;
        if (t == 0)
            draw[0] = -1f;
        Group.Barrier();
        float earlier = start;
        for (int j = 0; j < warp; j++)
            earlier += shared[j];
        float exclusive = Warp.ShuffleUp(inclusive, 1);
        exclusive = earlier + (lane == 0 ? 0f : exclusive);
        inclusive += earlier;
        if (run > 0f && goal >= exclusive && goal < inclusive)
        {
            int chosen = lastKept; // rounding past the run's own walk: its last kept token
            float cumulative = exclusive;
            for (int j = runFrom; j < runTo; j++)
            {
                float l = logits[j];
                if (Key(l) < kept)
                    continue;
                cumulative += probabilities[j];
                if (goal < cumulative)
                {
                    chosen = j;
                    break;
                }
            }
            draw[0] = chosen;
        }
        Group.Barrier();
        float token = draw[0];
        // No run held the target (rounding at the range's end): the range's last kept token.
        return token >= 0f ? (int)token : (int)BlockReduce.Max(lastKept, shared);
    }

    /// <summary>One step of a warp's inclusive scan (written out: ILGPU keeps a loop over the steps as a loop).</summary>
    private static float ScanStep(float v, int d, int lane)
    {
        float other = Warp.ShuffleUp(v, d);
        return lane >= d ? v + other : v;
    }

    /// <summary>A logit's probability if it is kept (key at or above <paramref name="kept"/>), else 0.</summary>
    private static float Kept(float l, float p, int kept) => Key(l) >= kept ? p : 0f;

}
