using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// int4 weight-only, asymmetric uint4 per group of G along K with a float zero point ("int4wo-G", torchao's
/// Int4WeightOnlyConfig with tinygemm semantics): W[n, k] ≈ (q[n, k] − 8)·scale[n, g] + zero[n, g], g = k / G,
/// q in [0, 15].
/// <para>Layout (Lowbit's own, for x86 SIMD): <see cref="Packed"/> is U8 [N, K/2], row n at byte n·K/2. K is cut
/// into chunks of 32 elements, 16 bytes each; element k lives in byte n·K/2 + 16·(k / 32) + (k mod 16), in the
/// low nibble (bits 0–3) when k mod 32 &lt; 16 and in the high nibble (bits 4–7) otherwise. So byte 16c + j of a
/// row holds elements 32c + j (low) and 32c + 16 + j (high): one 16-byte load widened to 16 int32 lanes gives
/// 16 consecutive elements by <c>&amp; 15</c> and the next 16 by <c>&gt;&gt; 4</c>, with no shuffle.
/// G is a multiple of 32, so a chunk never straddles two groups.</para>
/// <para><see cref="Scales"/> and <see cref="Zeros"/> are BF16 [N, K/G] row-major (scale[n, g] at element
/// n·K/G + g), as tinygemm keeps them.</para>
/// <para>Quantization: <see cref="AffineScheme.UInt4Tinygemm"/> per group: scale = max((max − min) / 15, 1e-6),
/// zero = min + 8·scale (both rounded to BF16), q = clamp(round((W − (zero − 8·scale)) / scale), 0, 15).</para>
/// </summary>
public sealed class Int4GroupedWeight : IWeight
{
    /// <summary>Elements per packing chunk (16 bytes).</summary>
    public const int ChunkElements = 32;

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public Int4GroupedWeight(Tensor packed, Tensor scales, Tensor zeros, int inFeatures, int groupSize)
    {
        ArgumentNullException.ThrowIfNull(packed);
        ArgumentNullException.ThrowIfNull(scales);
        ArgumentNullException.ThrowIfNull(zeros);
        CheckGroupSize(inFeatures, groupSize);
        if (packed.Rank != 2 || packed.DType != DType.U8 || (long)packed.Shape[1] * 2 != inFeatures)
            throw new ArgumentException($"int4wo-{groupSize}: packed nibbles must be U8 [N, {inFeatures / 2}]; got {packed}.", nameof(packed));
        int n = packed.Shape[0], groups = inFeatures / groupSize;
        foreach (var (t, name) in new[] { (scales, nameof(scales)), (zeros, nameof(zeros)) })
        {
            if (t.Rank != 2 || t.DType != DType.BF16 || t.Shape[0] != n || t.Shape[1] != groups)
                throw new ArgumentException($"int4wo-{groupSize}: {name} must be BF16 [{n}, {groups}]; got {t}.", name);
        }

        Packed = packed;
        Scales = scales;
        Zeros = zeros;
        InFeatures = inFeatures;
        GroupSize = groupSize;
        FormatName = $"int4wo-{groupSize}";
    }

    /// <summary>q: U8 [N, K/2], two nibbles a byte in the chunked layout above.</summary>
    public Tensor Packed { get; }

    /// <summary>scale: BF16 [N, K/G].</summary>
    public Tensor Scales { get; }

    /// <summary>zero: BF16 [N, K/G] (float domain).</summary>
    public Tensor Zeros { get; }

    public int GroupSize { get; }
    public int OutFeatures => Packed.Shape[0];
    public int InFeatures { get; }
    public int Groups => InFeatures / GroupSize;
    public string FormatName { get; }
    public long ByteLength => Packed.ByteLength + Scales.ByteLength + Zeros.ByteLength;

    public static AffineScheme Scheme => AffineScheme.UInt4Tinygemm;

    /// <summary>Byte (within the row) and bit shift (0 or 4) of element <paramref name="k"/>.</summary>
    public static (int Byte, int Shift) Locate(int k) => ((16 * (k / ChunkElements)) + (k % 16), (k % ChunkElements) < 16 ? 0 : 4);

    /// <summary>Quantizes a dense [N, K] weight group by group. K must be a multiple of
    /// <paramref name="groupSize"/>, itself a multiple of 32.</summary>
    public static Int4GroupedWeight Quantize(Tensor dense, int groupSize)
    {
        var (n, k) = DenseRows.Shape(dense, $"int4wo-{groupSize}");
        CheckGroupSize(k, groupSize);
        int groups = k / groupSize;
        var packed = Tensor.Allocate(DType.U8, n, k / 2);
        var scales = Tensor.Allocate(DType.BF16, n, groups);
        var zeros = Tensor.Allocate(DType.BF16, n, groups);
        DenseRows.ForEachRow(n, k, (r, row, q) =>
        {
            DenseRows.QuantizeGroups(dense, r, row, q, groupSize, Scheme, scales, zeros);
            Span<byte> bytes = packed.Row<byte>(r);
            for (int i = 0; i < k; i++)
            {
                var (b, shift) = Locate(i);
                bytes[b] |= (byte)(q[i] << shift);
            }
        });
        return new Int4GroupedWeight(packed, scales, zeros, k, groupSize);
    }

    /// <summary>q[row, k] in [0, 15].</summary>
    public int Quantized(int row, int k)
    {
        var (b, shift) = Locate(k);
        return (Packed.Row<byte>(row)[b] >> shift) & 15;
    }

    /// <summary>The reference: destination[k] = (q − 8)·scale + zero in F32, exactly as torchao's
    /// dequantize_affine_tinygemm.</summary>
    public void Dequantize(int row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, OutFeatures);
        if (destination.Length != InFeatures)
            throw new ArgumentException($"destination has {destination.Length} elements; a row has {InFeatures}.", nameof(destination));
        var scheme = Scheme;
        for (int g = 0; g < Groups; g++)
        {
            var p = new QParams(DenseRows.Scalar(Scales, ((long)row * Groups) + g), DenseRows.Scalar(Zeros, ((long)row * Groups) + g));
            for (int k = g * GroupSize; k < (g + 1) * GroupSize; k++)
                destination[k] = Affine.Dequantize(Quantized(row, k), p, scheme);
        }
    }

    /// <summary>Why a weight with <paramref name="inFeatures"/> columns cannot take groups of
    /// <paramref name="groupSize"/>, or null when it can.</summary>
    public static string? Incompatibility(int inFeatures, int groupSize) =>
        groupSize < ChunkElements || groupSize % ChunkElements != 0 ? $"group size {groupSize} is not a multiple of {ChunkElements}"
        : inFeatures % groupSize != 0 ? $"K={inFeatures} not a multiple of {groupSize}"
        : null;

    private static void CheckGroupSize(int inFeatures, int groupSize)
    {
        string? reason = inFeatures <= 0 ? $"K={inFeatures} is empty" : Incompatibility(inFeatures, groupSize);
        if (reason is not null)
            throw new ArgumentException($"int4wo-{groupSize}: {reason}.");
    }

    public void Dispose()
    {
        Packed.Dispose();
        Scales.Dispose();
        Zeros.Dispose();
    }
}
