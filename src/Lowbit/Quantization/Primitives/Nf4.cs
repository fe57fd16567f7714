using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Lowbit.Quantization.Primitives;

/// <summary>
/// 4-bit NormalFloat (QLoRA, Dettmers et al. 2023, sec. 3 and appendix E) as torchao's NF4Tensor stores it
/// (torchao/dtypes/nf4tensor.py, now torchao/quantization/quantize_/workflows/nf4/nf4_tensor.py; defaults
/// block_size 64, scaler_block_size 256).
/// <para>Blocks of <c>blockSize</c> consecutive elements share a float32 scale s_b = max |x| over the block
/// (absmax). Each element is code q_i = the index of the <see cref="Table"/> value nearest to x_i / s_b
/// (float32 division, then float32 distances |x_i/s_b − T[k]|; an exact tie goes to the lower index, as
/// torch's min(dim) returns the first minimum), and x_i ≈ T[q_i]·s_b.</para>
/// <para>Layout: byte k of <c>packed</c> holds elements 2k and 2k+1, element 2k in the HIGH nibble:
/// packed[k] = q[2k] &lt;&lt; 4 | q[2k+1] (torchao's <c>quantized_blocks[::2] &lt;&lt; 4 | quantized_blocks[1::2]</c>;
/// the opposite of FP4's <see cref="BitPacking"/> order). Scales are one float32 per block, in block order,
/// or double-quantized (<see cref="QuantizeScales"/>): int8 per block plus a float32 factor per 256 blocks and
/// one float32 mean.</para>
/// </summary>
public static class Nf4
{
    public const int DefaultBlockSize = 64;

    public const int DefaultScalerBlockSize = 256;

    /// <summary>The code of 0.0.</summary>
    public const byte Zero = 7;

    // torchao's NF4 levels, copied as data from NF4Tensor.from_tensor in torchao/dtypes/nf4tensor.py (the
    // 4-decimal roundings of QLoRA's levels). bitsandbytes keeps full float32 precision instead
    // (-0.6961928009986877, ..., 0.7229568362236023); the two tables differ by at most 5e-5.
    private static ReadOnlySpan<float> Levels =>
    [
        -1.0000f, -0.6962f, -0.5251f, -0.3949f, -0.2844f, -0.1848f, -0.0911f, 0.0000f,
        0.0796f, 0.1609f, 0.2461f, 0.3379f, 0.4407f, 0.5626f, 0.7230f, 1.0000f,
    ];

    // T[1..8] and T[9..14], padded with +inf (no finite v is ≥ it).
    private static readonly Vector256<float> Thresholds0 = Vector256.Create(Levels[1..9]);
    private static readonly Vector256<float> Thresholds1 = Vector256.Create(
        Levels[9], Levels[10], Levels[11], Levels[12], Levels[13], Levels[14], float.PositiveInfinity, float.PositiveInfinity);

    /// <summary>The 16 NF4 levels in code order, ascending from −1 to 1 with T[7] = 0. Decode side of an NF4
    /// GEMV: x = T[code]·scale.</summary>
    public static ReadOnlySpan<float> Table => Levels;

    /// <summary>The largest gap between neighbouring levels (−1 to −0.6962, 0.3038): the round-trip error of
    /// an element is at most half of it times its block's scale.</summary>
    public static float MaxGap => Levels[1] - Levels[0];

    /// <summary>The code whose level is nearest to v (a value already divided by its scale), ties to the lower
    /// code; v beyond ±1 gives code 0 or 15.</summary>
    public static byte Nearest(float v)
    {
        // lo = how many of T[1..14] are ≤ v: the nearest level is T[lo] or T[lo + 1], and float32 rounding is
        // monotone, so no farther level can tie with them. Counted with two vector compares and a popcount, and
        // the last choice made with a flag, because branches on random weights mispredict (~4x slower).
        Vector256<float> vv = Vector256.Create(v);
        uint below = Vector256.GreaterThanOrEqual(vv, Thresholds0).ExtractMostSignificantBits()
            | (Vector256.GreaterThanOrEqual(vv, Thresholds1).ExtractMostSignificantBits() << 8);
        int lo = BitOperations.PopCount(below);
        ReadOnlySpan<float> t = Levels;
        bool upper = MathF.Abs(v - t[lo]) > MathF.Abs(v - t[lo + 1]);
        return (byte)(lo + Unsafe.As<bool, byte>(ref upper));
    }

    /// <summary>Packed bytes for count elements: count / 2.</summary>
    public static int PackedLength(int count) => count / 2;

    /// <summary>Absmax-scales each block of x and writes its codes, two a byte, and the block scales.</summary>
    /// <param name="x">[blocks·blockSize] values, all finite.</param>
    /// <param name="blockSize">Elements per scale, even (torchao: 64).</param>
    /// <param name="packed">[blocks·blockSize/2] bytes, written as the type describes.</param>
    /// <param name="scales">[blocks] absmax scales, written. An all-zero block has scale 0 and codes 7 (0.0),
    /// where torchao would divide 0 by 0.</param>
    /// <exception cref="ArgumentException">A length does not fit blockSize, or a block holds a NaN or inf.</exception>
    public static void Quantize(ReadOnlySpan<float> x, int blockSize, Span<byte> packed, Span<float> scales)
    {
        CheckShapes(x.Length, packed.Length, scales.Length, blockSize);
        for (int b = 0; b < scales.Length; b++)
        {
            ReadOnlySpan<float> xb = x.Slice(b * blockSize, blockSize);
            Span<byte> pb = packed.Slice(b * blockSize / 2, blockSize / 2);
            float absmax = 0;
            foreach (float v in xb)
                absmax = MathF.Max(absmax, MathF.Abs(v)); // MathF.Max propagates NaN
            if (!float.IsFinite(absmax))
                ThrowNotFinite(b, blockSize);
            scales[b] = absmax;
            for (int k = 0; k < pb.Length; k++)
            {
                pb[k] = absmax == 0 ? (byte)((Zero << 4) | Zero)
                    : (byte)((Nearest(xb[2 * k] / absmax) << 4) | Nearest(xb[(2 * k) + 1] / absmax));
            }
        }
    }

    /// <summary>x[i] = T[code i]·scales[i / blockSize], code 2k from the high nibble of packed[k].</summary>
    /// <exception cref="ArgumentException">A length does not fit blockSize.</exception>
    public static void Dequantize(ReadOnlySpan<byte> packed, ReadOnlySpan<float> scales, int blockSize, Span<float> x)
    {
        CheckShapes(x.Length, packed.Length, scales.Length, blockSize);
        ReadOnlySpan<float> t = Levels;
        for (int b = 0; b < scales.Length; b++)
        {
            ReadOnlySpan<byte> pb = packed.Slice(b * blockSize / 2, blockSize / 2);
            Span<float> xb = x.Slice(b * blockSize, blockSize);
            float scale = scales[b];
            for (int k = 0; k < pb.Length; k++)
            {
                xb[2 * k] = t[pb[k] >> 4] * scale;
                xb[(2 * k) + 1] = t[pb[k] & 0xF] * scale;
            }
        }
    }

    /// <summary>
    /// Double quantization of the block scales, as torchao's <c>NF4Tensor.double_quantize_scalers</c>:
    /// mean = mean of all scales (float64 sum, rounded to float32); d_j = s_j − mean; per group g of
    /// <c>scalerBlockSize</c> consecutive scales, factor_g = 256 / (2·max_j∈g |d_j|) and
    /// q_j = clamp(round_half_even(d_j·factor_g), −128, 127). Decoded: s_j ≈ q_j / factor_g + mean, within
    /// max|d|/256 (max|d|/128 for the +max|d| element, which maps to 128 and is clamped to 127, as in torchao).
    /// torchao requires the scale count to be a multiple of scalerBlockSize; here a shorter last group gets
    /// its own factor, and a group with every d_j = 0 gets factor 1 (torchao: 256/0).
    /// </summary>
    /// <param name="scales">[blocks] absmax scales from <see cref="Quantize"/>.</param>
    /// <param name="quantized">[blocks] int8 codes, written.</param>
    /// <param name="factors">[⌈blocks/scalerBlockSize⌉] quantization factors, written.</param>
    /// <returns>The mean, which decoding adds back.</returns>
    /// <exception cref="ArgumentException">A length does not fit scalerBlockSize, or a scale is not finite.</exception>
    public static float QuantizeScales(ReadOnlySpan<float> scales, int scalerBlockSize, Span<sbyte> quantized, Span<float> factors)
    {
        CheckScaleShapes(scales.Length, quantized.Length, factors.Length, scalerBlockSize);
        double sum = 0;
        foreach (float s in scales)
            sum += s;
        float mean = scales.IsEmpty ? 0 : (float)(sum / scales.Length);
        if (!float.IsFinite(mean))
            throw new ArgumentException($"Nf4 scales: their mean is {mean}; every scale must be finite.", nameof(scales));
        for (int g = 0; g < factors.Length; g++)
        {
            int start = g * scalerBlockSize, count = Math.Min(scalerBlockSize, scales.Length - start);
            float absmax = 0;
            for (int j = start; j < start + count; j++)
                absmax = MathF.Max(absmax, MathF.Abs(scales[j] - mean));
            float factor = factors[g] = absmax == 0 ? 1f : 256f / (2f * absmax);
            for (int j = start; j < start + count; j++)
                quantized[j] = (sbyte)Math.Clamp(MathF.Round((scales[j] - mean) * factor, MidpointRounding.ToEven), -128f, 127f);
        }

        return mean;
    }

    /// <summary>scales[j] = quantized[j] / factors[j / scalerBlockSize] + mean (float32, as torchao's
    /// <c>dequantize_scalers</c>).</summary>
    /// <exception cref="ArgumentException">A length does not fit scalerBlockSize.</exception>
    public static void DequantizeScales(ReadOnlySpan<sbyte> quantized, ReadOnlySpan<float> factors, float mean, int scalerBlockSize, Span<float> scales)
    {
        CheckScaleShapes(scales.Length, quantized.Length, factors.Length, scalerBlockSize);
        DequantizeScales(quantized, factors, mean, scalerBlockSize, 0, scales);
    }

    /// <summary>Scales [start, start + scales.Length) only, as <see cref="DequantizeScales(ReadOnlySpan{sbyte}, ReadOnlySpan{float}, float, int, Span{float})"/>
    /// computes them (a kernel decodes one row's scales at a time).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The range passes the codes or their factors.</exception>
    public static void DequantizeScales(ReadOnlySpan<sbyte> quantized, ReadOnlySpan<float> factors, float mean, int scalerBlockSize, int start, Span<float> scales)
    {
        // Checked once here; the loops below read through refs. A run of scales that shares a factor is decoded 8
        // at a time (vpmovsx, convert, vdivps, add: each lane rounds as the scalar q / factor + mean), with no integer
        // division per scale; the kernels pay this per row.
        ref sbyte q = ref MemoryMarshal.GetReference(quantized.Slice(start, scales.Length));
        ref float s = ref MemoryMarshal.GetReference(scales);
        for (int j = 0, end; j < scales.Length; j = end)
        {
            int g = (start + j) / scalerBlockSize;
            end = Math.Min(scales.Length, ((g + 1) * scalerBlockSize) - start);
            float factor = factors[g];
            Vector256<float> f = Vector256.Create(factor), m = Vector256.Create(mean);
            for (; j + 8 <= end; j += 8)
            {
                var bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<long>(ref Unsafe.As<sbyte, byte>(ref Unsafe.Add(ref q, j)))).AsSByte();
                Vector256<float> v = Vector256.ConvertToSingle(Vector256.WidenLower(Vector128.WidenLower(bytes).ToVector256Unsafe()));
                ((v / f) + m).StoreUnsafe(ref s, (nuint)j);
            }

            for (; j < end; j++)
                Unsafe.Add(ref s, j) = (Unsafe.Add(ref q, j) / factor) + mean;
        }
    }

    private static void CheckShapes(int n, int packed, int scales, int blockSize)
    {
        if (blockSize <= 0 || blockSize % 2 != 0 || n % blockSize != 0 || packed != n / 2 || scales != n / blockSize)
            throw new ArgumentException($"Nf4: {n} values in blocks of {blockSize} need an even block size dividing the count, "
                + $"{n / 2} packed bytes and {(blockSize > 0 ? n / blockSize : 0)} scales; got {packed} bytes and {scales} scales.");
    }

    private static void CheckScaleShapes(int scales, int quantized, int factors, int scalerBlockSize)
    {
        if (scalerBlockSize <= 0 || quantized != scales || factors != (scales + scalerBlockSize - 1) / Math.Max(scalerBlockSize, 1))
            throw new ArgumentException($"Nf4 scales: {scales} scales in groups of {scalerBlockSize} need a positive group size, {scales} int8 codes "
                + $"and ⌈{scales}/{scalerBlockSize}⌉ factors; got {quantized} codes and {factors} factors.");
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowNotFinite(int block, int blockSize) =>
        throw new ArgumentException($"Nf4: block {block} (elements {block * blockSize}..{((block + 1) * blockSize) - 1}) holds a NaN or an infinity.", "x");
}
