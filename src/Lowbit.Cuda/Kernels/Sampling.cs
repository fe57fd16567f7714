using System.Numerics;
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
/// top-k and top-p cuts are binary searches over the logits' order-preserving 32-bit keys (each step a count or
/// a mass over the vocabulary, block-reduced), the probabilities e^((l − max)/T) are written once to a scratch
/// row, and the draw walks per-thread contiguous segments: segment sums, then thread 0 finds the segment and
/// the index where the cumulative mass passes uniform·(kept mass). Sums are f32 (the reference: f64), so a
/// uniform within ~1e-6 of a boundary may pick the neighbour.
/// </summary>
public sealed class Sampling
{
    private const int MaxGroupSize = 1024;
    private readonly int _groupSize;
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, int, SamplingArgs> _kernel;

    public Sampling(Accelerator accelerator)
    {
        _groupSize = (int)Math.Min(MaxGroupSize, BitOperations.RoundUpToPowerOf2((uint)accelerator.MaxNumThreadsPerGroup + 1) / 2);
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

    private static void Kernel(ArrayView<float> logits, ArrayView<float> probabilities, ArrayView<int> result, int n, SamplingArgs a)
    {
        var shared = SharedMemory.Allocate<float>(32);
        var segments = SharedMemory.Allocate<float>(MaxGroupSize);
        int t = Group.IdxX, threads = Group.DimX;

        float max = float.NegativeInfinity;
        for (int i = t; i < n; i += threads)
            max = MathF.Max(max, logits[i]);
        max = BlockReduce.Max(max, shared);
        long top = Key(max), kept = int.MinValue;

        // The k-th largest logit: the largest key with at least k logits at or above it. Every thread holds the
        // same lo and hi (the counts are block-reduced), so the loop and its barriers stay uniform.
        if (a.TopK > 0 && a.TopK < n)
        {
            long lo = int.MinValue, hi = top;
            while (lo < hi)
            {
                long mid = lo + ((hi - lo + 1) / 2);
                float count = 0f;
                for (int i = t; i < n; i += threads)
                    count += Key(logits[i]) >= mid ? 1f : 0f;
                if (BlockReduce.Sum(count, shared) >= a.TopK)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            kept = lo;
        }

        float total = 0f;
        for (int i = t; i < n; i += threads)
        {
            float l = logits[i];
            float p = Key(l) >= kept ? FastMath.Exp((l - max) * a.InverseTemperature) : 0f;
            probabilities[i] = p;
            total += p;
        }
        total = BlockReduce.Sum(total, shared); // its barriers also publish every thread's probabilities

        // The smallest top set reaching topP of the mass: the largest key whose mass at or above it reaches it.
        if (a.TopP < 1f)
        {
            float target = a.TopP * total;
            long lo = kept, hi = top;
            while (lo < hi)
            {
                long mid = lo + ((hi - lo + 1) / 2);
                float mass = 0f;
                for (int i = t; i < n; i += threads)
                    mass += Key(logits[i]) >= mid ? probabilities[i] : 0f;
                if (BlockReduce.Sum(mass, shared) >= target)
                    lo = mid;
                else
                    hi = mid - 1;
            }
            kept = lo;
        }

        int per = (n + threads - 1) / threads, from = t * per, to = Math.Min(n, from + per);
        float sum = 0f;
        for (int i = from; i < to; i++)
            sum += Key(logits[i]) >= kept ? probabilities[i] : 0f;
        segments[t] = sum;
        Group.Barrier();
        if (t != 0)
            return;
        float all = 0f;
        for (int j = 0; j < threads; j++)
            all += segments[j];
        float r = a.Uniform * all, cumulative = 0f;
        int chosen = -1, last = 0;
        for (int j = 0; j < threads && chosen < 0; j++)
        {
            if (r >= cumulative + segments[j] && j < threads - 1)
            {
                cumulative += segments[j];
                continue;
            }
            for (int i = j * per; i < Math.Min(n, (j + 1) * per) && chosen < 0; i++)
            {
                if (Key(logits[i]) < kept)
                    continue;
                cumulative += probabilities[i];
                last = i;
                if (r < cumulative)
                    chosen = i;
            }
            // Rounding left r past this segment's walk: take its last kept token.
            if (chosen < 0 && segments[j] > 0f)
                chosen = last;
        }
        result[0] = chosen < 0 ? last : chosen;
    }
}
