using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// What the "codes × block scale" formats (fp8wo, nf4, uintx, fp6) share: <see cref="Codes"/> U8 [N, RowBytes]
/// (row n at byte n·RowBytes, each format's type documents where element k sits), <see cref="Scales"/> F32
/// [N, K/G] (scale[n, g] at element n·K/G + g; per-row formats have G = K), and for formats with zero points
/// <see cref="Zeros"/> F32 [N, K/G] holding integers. The constructor checks shapes and dtypes; each format
/// adds its layout, its Quantize factory and its reference Dequantize.
/// </summary>
public abstract class CodedWeight : IWeight
{
    private protected CodedWeight(string formatName, Tensor codes, Tensor scales, Tensor? zeros, int inFeatures, int groupSize, int rowBytes)
    {
        ArgumentNullException.ThrowIfNull(codes);
        ArgumentNullException.ThrowIfNull(scales);
        if (inFeatures <= 0 || groupSize <= 0 || inFeatures % groupSize != 0)
            throw new ArgumentException($"{formatName}: K={inFeatures} is not a positive multiple of the group size {groupSize}.");
        if (codes.Rank != 2 || codes.DType != DType.U8 || codes.Shape[1] != rowBytes)
            throw new ArgumentException($"{formatName}: codes must be U8 [N, {rowBytes}]; got {codes}.", nameof(codes));
        int n = codes.Shape[0], groups = inFeatures / groupSize;
        foreach (var (t, name) in new[] { (scales, nameof(scales)), (zeros, nameof(zeros)) })
        {
            if (t is not null && (t.Rank != 2 || t.DType != DType.F32 || t.Shape[0] != n || t.Shape[1] != groups))
                throw new ArgumentException($"{formatName}: {name} must be F32 [{n}, {groups}]; got {t}.", name);
        }

        FormatName = formatName;
        Codes = codes;
        Scales = scales;
        Zeros = zeros;
        InFeatures = inFeatures;
        GroupSize = groupSize;
    }

    /// <summary>The shape rule of the grouped formats: a group is a whole number of the kernels' 16-element
    /// chunks, and groups tile K. Returns why not, or null.</summary>
    public static string? GroupIncompatibility(int inFeatures, int groupSize) =>
        groupSize < 16 || groupSize % 16 != 0 ? $"group size {groupSize} is not a multiple of 16"
        : inFeatures % groupSize != 0 ? $"K={inFeatures} not a multiple of {groupSize}"
        : null;

    /// <summary>The codes: U8 [N, RowBytes].</summary>
    public Tensor Codes { get; }

    /// <summary>scale: F32 [N, K/G].</summary>
    public Tensor Scales { get; }

    /// <summary>Integer zero points as F32 [N, K/G], or null.</summary>
    public Tensor? Zeros { get; }

    public int GroupSize { get; }
    public int Groups => InFeatures / GroupSize;
    public int OutFeatures => Codes.Shape[0];
    public int InFeatures { get; }
    public string FormatName { get; }
    public long ByteLength => Codes.ByteLength + Scales.ByteLength + (Zeros?.ByteLength ?? 0);

    /// <summary>The reference: destination[k] = deq(W[row, k]) in F32, from the format's primitives.</summary>
    public void Dequantize(int row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, OutFeatures);
        if (destination.Length != InFeatures)
            throw new ArgumentException($"destination has {destination.Length} elements; a row has {InFeatures}.", nameof(destination));
        DequantizeRow(Codes.Row<byte>(row), Scales.Row<float>(row), Zeros is null ? default : Zeros.Row<float>(row), destination);
    }

    private protected abstract void DequantizeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<float> zeros, Span<float> destination);

    public void Dispose()
    {
        Codes.Dispose();
        Scales.Dispose();
        Zeros?.Dispose();
    }
}
