using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// int4 symmetric per-group weight with int8 dynamic per-token activations ("8da4w-G", torchao's
/// Int8DynamicActivationInt4WeightConfig(group_size=G)): W[n, k] ≈ q[n, k]·scale[n, k / G], q in [−8, 7]; at run
/// time each token is quantized to int8 asymmetrically (<c>_int8_asymm_per_token_quant</c>) and
/// y = s_x·Σ_g scale[g]·Σ_{k∈g} (q_x − z_x)·q[k].
/// <para>Layout: <see cref="Packed"/> is U8 [N, K/2], row n at byte n·K/2, nibbles holding q + 8 (0..15). K is
/// cut into blocks of 64 elements (32 bytes): byte j of block b (row byte 32b + j) holds element 64b + j in its
/// low nibble and element 64b + 32 + j in its high nibble, so one 32-byte load widened to 32 int16 lanes gives
/// 32 consecutive elements by <c>&amp; 15</c> and the next 32 by <c>&gt;&gt; 4</c>. When K mod 64 = 32 the last 32
/// elements are a half block of 16 bytes: byte j holds element j (low) and 16 + j (high) of it.
/// <see cref="Scales"/> is F32 [N, K/G] (values rounded to the dense weight's dtype, which torchao keeps).</para>
/// <para>Quantization: <see cref="Affine"/>, symmetric, [−8, 7], eps = f32 eps: scale = max|W[group]| / 7.5,
/// q = clamp(round(W·(1/scale)), −8, 7).</para>
/// </summary>
public sealed class Int8DynamicInt4Weight : IWeight
{
    public const string Family = "8da4w";

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public Int8DynamicInt4Weight(Tensor packed, Tensor scales, int inFeatures, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(packed);
        ArgumentNullException.ThrowIfNull(scales);
        if (Incompatibility(inFeatures, groupSize) is { } reason)
            throw new ArgumentException($"{NameOf(groupSize)}: {reason}.");
        if (packed.Rank != 2 || packed.DType != DType.U8 || (long)packed.Shape[1] * 2 != inFeatures)
            throw new ArgumentException($"{NameOf(groupSize)}: packed nibbles must be U8 [N, {inFeatures / 2}]; got {packed}.", nameof(packed));
        if (scales.Rank != 2 || scales.DType != DType.F32 || scales.Shape[0] != packed.Shape[0] || scales.Shape[1] != inFeatures / groupSize)
            throw new ArgumentException($"{NameOf(groupSize)}: scales must be F32 [{packed.Shape[0]}, {inFeatures / groupSize}]; got {scales}.", nameof(scales));
        Packed = packed;
        Scales = scales;
        InFeatures = inFeatures;
        GroupSize = groupSize;
        FormatName = NameOf(groupSize);
    }

    /// <summary>q + 8: U8 [N, K/2] in the block-64 layout above.</summary>
    public Tensor Packed { get; }

    /// <summary>scale: F32 [N, K/G].</summary>
    public Tensor Scales { get; }

    public int GroupSize { get; }
    public int Groups => InFeatures / GroupSize;
    public int OutFeatures => Packed.Shape[0];
    public int InFeatures { get; }
    public string FormatName { get; }
    public long ByteLength => Packed.ByteLength + Scales.ByteLength;

    public static string NameOf(int groupSize) => $"{Family}-{groupSize}";

    /// <summary>torchao's weight scheme with scales in <paramref name="scaleDType"/>.</summary>
    public static AffineScheme Scheme(DType scaleDType) =>
        new(MappingType.Symmetric, QuantRange.Int4, ZeroPointDomain.Int, AffineScheme.F32Eps, scaleDType);

    /// <summary>Byte (within the row) and bit shift (0 or 4) of element <paramref name="k"/> of a row of
    /// <paramref name="inFeatures"/>.</summary>
    public static (int Byte, int Shift) Locate(int k, int inFeatures)
    {
        int block = k / 64, half = inFeatures - (64 * block) == 32 ? 16 : 32; // the half block at the end of K mod 64 = 32
        int j = k % 64;
        return ((32 * block) + (j % half), j < half ? 0 : 4);
    }

    /// <summary>Quantizes a dense [N, K] weight group by group.</summary>
    public static Int8DynamicInt4Weight Quantize(Tensor dense, int groupSize)
    {
        var (n, k) = DenseRows.Shape(dense, NameOf(groupSize));
        if (Incompatibility(k, groupSize) is { } reason)
            throw new ArgumentException($"{NameOf(groupSize)}: {reason}.");
        var scheme = Scheme(dense.DType);
        int groups = k / groupSize;
        var packed = Tensor.Allocate(DType.U8, n, k / 2);
        var scales = Tensor.Allocate(DType.F32, n, groups);
        DenseRows.ForEachRow(n, k, (r, row, q) =>
        {
            DenseRows.QuantizeGroups(dense, r, row, q, groupSize, scheme, scales, null);
            Span<byte> bytes = packed.Row<byte>(r);
            for (int i = 0; i < k; i++)
            {
                var (b, shift) = Locate(i, k);
                bytes[b] |= (byte)((q[i] + 8) << shift);
            }
        });
        return new Int8DynamicInt4Weight(packed, scales, k, groupSize);
    }

    /// <summary>q[row, k] in [−8, 7].</summary>
    public int Quantized(int row, int k)
    {
        var (b, shift) = Locate(k, InFeatures);
        return ((Packed.Row<byte>(row)[b] >> shift) & 15) - 8;
    }

    /// <summary>The weight's reference: destination[k] = q·scale in F32 (activations are quantized by the kernel).</summary>
    public void Dequantize(int row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, OutFeatures);
        if (destination.Length != InFeatures)
            throw new ArgumentException($"destination has {destination.Length} elements; a row has {InFeatures}.", nameof(destination));
        var scheme = Scheme(DType.F32);
        ReadOnlySpan<float> s = Scales.Row<float>(row);
        for (int k = 0; k < InFeatures; k++)
            destination[k] = Affine.Dequantize(Quantized(row, k), new QParams(s[k / GroupSize], 0), scheme);
    }

    /// <summary>Why a weight with <paramref name="inFeatures"/> columns cannot take groups of
    /// <paramref name="groupSize"/>, or null when it can.</summary>
    public static string? Incompatibility(int inFeatures, int groupSize) =>
        groupSize < 32 || groupSize % 32 != 0 ? $"group size {groupSize} is not a multiple of 32"
        : inFeatures <= 0 || inFeatures % groupSize != 0 ? $"K={inFeatures} not a multiple of {groupSize}"
        : null;

    public void Dispose()
    {
        Packed.Dispose();
        Scales.Dispose();
    }
}
