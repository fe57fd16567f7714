namespace Lowbit.Generation;

/// <summary>
/// Temperature / top-k / top-p sampling without sorting, the way a GPU does it (no logits copy to the host):
/// thresholds instead of a sorted candidate list. Kept tokens: logit ≥ the k-th largest logit (ties kept), then
/// logit ≥ the largest t whose kept mass Σ_{l ≥ t} e^((l − max)/T) reaches topP of the total (the smallest
/// top set reaching topP, ties kept). The draw inverts the cumulative mass at <c>uniform</c>·(kept mass) walking
/// the vocabulary in index order. Same distribution as <see cref="Sampler"/>; for one uniform the two may pick
/// different tokens (Sampler walks in probability order). This is the reference of the device kernels
/// (IBackend.Sample), in float64.
/// </summary>
public static class ThresholdSampling
{
    /// <summary>A float's bits mapped to an unsigned key in the floats' order (−∞ lowest; NaNs not expected).</summary>
    public static uint Key(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
    }

    /// <param name="uniform">In [0, 1).</param>
    public static int Sample(ReadOnlySpan<float> logits, float temperature, int topK, float topP, double uniform)
    {
        if (logits.IsEmpty)
            throw new ArgumentException("No logits to sample from.", nameof(logits));
        if (temperature <= 0f)
            return Sampler.ArgMax(logits);
        float max = float.NegativeInfinity;
        foreach (float v in logits)
            max = Math.Max(max, v);
        uint kept = 0;
        if (topK > 0 && topK < logits.Length)
            kept = LargestKey(logits, 0, Key(max), topK, max, 0);
        double invT = 1.0 / temperature;
        double total = Mass(logits, kept, max, invT);
        if (topP < 1f)
            kept = LargestKey(logits, kept, Key(max), topP * total, max, invT);
        double r = uniform * Mass(logits, kept, max, invT), cumulative = 0;
        int last = 0;
        for (int i = 0; i < logits.Length; i++)
        {
            if (Key(logits[i]) < kept)
                continue;
            cumulative += Math.Exp((logits[i] - max) * invT);
            last = i;
            if (r < cumulative)
                return i;
        }
        return last;
    }

    /// <summary>The largest key t in [lo, hi] whose count of logits at or above it (invT = 0) or their mass
    /// (invT &gt; 0) reaches <paramref name="target"/>; it holds at lo (binary search over the 32-bit keys).</summary>
    private static uint LargestKey(ReadOnlySpan<float> logits, uint lo, uint hi, double target, float max, double invT)
    {
        while (lo < hi)
        {
            uint mid = lo + ((hi - lo + 1) / 2);
            if ((invT == 0 ? Count(logits, mid) : Mass(logits, mid, max, invT)) >= target)
                lo = mid;
            else
                hi = mid - 1;
        }
        return lo;
    }

    private static int Count(ReadOnlySpan<float> logits, uint key)
    {
        int count = 0;
        foreach (float v in logits)
            count += Key(v) >= key ? 1 : 0;
        return count;
    }

    private static double Mass(ReadOnlySpan<float> logits, uint key, float max, double invT)
    {
        double mass = 0;
        foreach (float v in logits)
        {
            if (Key(v) >= key)
                mass += Math.Exp((v - max) * invT);
        }
        return mass;
    }
}
