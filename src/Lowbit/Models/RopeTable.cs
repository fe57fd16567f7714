namespace Lowbit.Models;

/// <summary>
/// cos and sin of every (position, frequency) pair for rotary embeddings, in Hugging Face's
/// rotate-half convention: [maxPositions, headDim/2] each, F32 in native memory.
/// Computed in float64, so they are at least as exact as transformers' float32 tables.
/// </summary>
public sealed class RopeTable : IDisposable
{
    private readonly Tensors.Tensor _cos;
    private readonly Tensors.Tensor _sin;

    public RopeTable(int headDim, int maxPositions, float theta, RopeScaling? scaling)
    {
        if (headDim % 2 != 0)
            throw new ArgumentException($"RoPE needs an even head dimension; got {headDim}.", nameof(headDim));
        HeadDim = headDim;
        MaxPositions = maxPositions;
        int half = headDim / 2;
        _cos = Tensors.Tensor.Allocate(Tensors.DType.F32, maxPositions, half);
        _sin = Tensors.Tensor.Allocate(Tensors.DType.F32, maxPositions, half);
        Span<double> invFreq = stackalloc double[half];
        InverseFrequencies(headDim, theta, scaling, invFreq);
        Span<float> cos = _cos.AsSpan<float>(), sin = _sin.AsSpan<float>();
        for (int pos = 0; pos < maxPositions; pos++)
        {
            for (int i = 0; i < half; i++)
            {
                double angle = pos * invFreq[i];
                cos[pos * half + i] = (float)Math.Cos(angle);
                sin[pos * half + i] = (float)Math.Sin(angle);
            }
        }
    }

    public int HeadDim { get; }
    public int MaxPositions { get; }

    /// <summary>[MaxPositions, HeadDim/2].</summary>
    public ReadOnlySpan<float> Cos => _cos.AsSpan<float>();

    /// <summary>[MaxPositions, HeadDim/2].</summary>
    public ReadOnlySpan<float> Sin => _sin.AsSpan<float>();

    /// <summary>inv_freq[i] = theta^(−2i/D), then Llama 3's frequency-dependent scaling when asked
    /// (transformers' _compute_llama3_parameters: long wavelengths divided by factor, short ones kept,
    /// a smooth blend between).</summary>
    public static void InverseFrequencies(int headDim, float theta, RopeScaling? scaling, Span<double> destination)
    {
        for (int i = 0; i < destination.Length; i++)
            destination[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        if (scaling is null)
            return;
        double oldContext = scaling.OriginalMaxPositionEmbeddings;
        double lowFreqWavelen = oldContext / scaling.LowFreqFactor;
        double highFreqWavelen = oldContext / scaling.HighFreqFactor;
        for (int i = 0; i < destination.Length; i++)
        {
            double wavelen = 2 * Math.PI / destination[i];
            if (wavelen < highFreqWavelen)
                continue;
            if (wavelen > lowFreqWavelen)
            {
                destination[i] /= scaling.Factor;
                continue;
            }
            double smooth = (oldContext / wavelen - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
            destination[i] = (1 - smooth) * destination[i] / scaling.Factor + smooth * destination[i];
        }
    }

    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
    }
}
