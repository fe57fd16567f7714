namespace Lowbit.Quantization.Primitives;

/// <summary>
/// Scaled quantization to a <see cref="FloatX"/> format (FP8, FP6, FP4), one float32 scale per block of
/// <c>blockSize</c> consecutive elements: per-tensor is blockSize = x.Length, per-row blockSize = K.
/// For block b: scale[b] = max(amax_b, 1e−12) / MaxFinite, codes[i] = Encode(x[i] / scale[b]) (true division,
/// then round-to-nearest-even with saturation), and x[i] ≈ Decode(codes[i])·scale[b].
/// <para>Matches torchao's float8 path (<c>_choose_scale_float8</c>: amax / finfo.max;
/// <c>_quantize_affine_float8</c>: x / scale, clamp to ±max, cast; <c>_dequantize_affine_float8</c>: q·scale)
/// and its fpx path (<c>_choose_qparams_affine_floatx</c>: amax.clamp(min=1e−12) / max_normal per row). The
/// 1e−12 floor (torchao.float8's EPS) keeps an all-zero block at scale 1e−12/max with zero codes, where
/// torchao's float8 path would divide 0 by 0. A NaN in a block makes its scale NaN, as torch's amax does.</para>
/// </summary>
public static class FloatScaling
{
    /// <summary>The smallest amax a scale is computed from.</summary>
    public const float AmaxFloor = 1e-12f;

    /// <summary>max(max_i |x[i]|, 1e−12) / format.MaxFinite.</summary>
    public static float ChooseScale(FloatX format, ReadOnlySpan<float> x)
    {
        float amax = AmaxFloor;
        foreach (float v in x)
            amax = MathF.Max(amax, MathF.Abs(v));
        return amax / format.MaxFinite;
    }

    /// <summary>Chooses a scale per block and encodes each element divided by its block's scale.</summary>
    /// <param name="x">[blocks·blockSize] values.</param>
    /// <param name="codes">[blocks·blockSize] codes, written.</param>
    /// <param name="scales">[blocks] scales, written.</param>
    /// <exception cref="ArgumentException">A length does not fit blockSize.</exception>
    public static void Quantize(FloatX format, ReadOnlySpan<float> x, int blockSize, Span<byte> codes, Span<float> scales)
    {
        CheckShapes(format, x.Length, codes.Length, scales.Length, blockSize);
        for (int b = 0; b < scales.Length; b++)
        {
            ReadOnlySpan<float> xb = x.Slice(b * blockSize, blockSize);
            Span<byte> cb = codes.Slice(b * blockSize, blockSize);
            float scale = scales[b] = ChooseScale(format, xb);
            for (int i = 0; i < blockSize; i++)
                cb[i] = format.Encode(xb[i] / scale);
        }
    }

    /// <summary>x[i] = DecodeTable[codes[i]]·scales[i / blockSize].</summary>
    /// <exception cref="ArgumentException">A length does not fit blockSize, or a code is out of range.</exception>
    public static void Dequantize(FloatX format, ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, int blockSize, Span<float> x)
    {
        CheckShapes(format, x.Length, codes.Length, scales.Length, blockSize);
        format.Decode(codes, x);
        for (int b = 0; b < scales.Length; b++)
        {
            Span<float> xb = x.Slice(b * blockSize, blockSize);
            float scale = scales[b];
            for (int i = 0; i < xb.Length; i++)
                xb[i] *= scale;
        }
    }

    private static void CheckShapes(FloatX format, int n, int codes, int scales, int blockSize)
    {
        if (blockSize <= 0 || n % blockSize != 0 || codes != n || scales != n / blockSize)
            throw new ArgumentException($"{format} scaled: {n} values in blocks of {blockSize} need a positive block size dividing the count, "
                + $"{n} codes and {(blockSize > 0 ? n / blockSize : 0)} scales; got {codes} codes and {scales} scales.");
    }
}
