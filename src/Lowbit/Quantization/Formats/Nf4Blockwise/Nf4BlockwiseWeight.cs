using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// 4-bit NormalFloat weight-only with an absmax scale per block of B consecutive elements of a row ("nf4",
/// torchao's NF4Tensor / QLoRA): W[n, k] ≈ T[q[n, k]]·scale[n, k / B], T = <see cref="Nf4.Table"/>.
/// <para>Layout: <see cref="CodedWeight.Codes"/> is U8 [N, K/2], row n at byte n·K/2; byte j of a row holds
/// elements 2j (HIGH nibble, bits 4–7) and 2j + 1 (low nibble), torchao's order (<see cref="Nf4"/>).
/// <see cref="CodedWeight.Scales"/> is F32 [N, K/B], the block's max |W| (blocks never straddle rows: B divides
/// K). Scales are stored plain; <see cref="Nf4DoubleQuantWeight"/> ("nf4-dq") has the same codes with torchao's
/// double-quantized scales.</para>
/// <para>Quantization: <see cref="Nf4.Quantize"/>: scale = max |x| over the block, q = the nearest T entry to
/// x / scale (an all-zero block: scale 0, code 7).</para>
/// </summary>
public sealed class Nf4BlockwiseWeight : CodedWeight
{
    public const string Name = "nf4";

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public Nf4BlockwiseWeight(Tensor codes, Tensor scales, int inFeatures, int blockSize)
        : base(NameOf(blockSize), codes, scales, null, inFeatures, Checked(inFeatures, blockSize), inFeatures / 2)
    {
    }

    /// <summary>"nf4" at torchao's default block size 64, else "nf4-B".</summary>
    public static string NameOf(int blockSize) => blockSize == Nf4.DefaultBlockSize ? Name : $"{Name}-{blockSize}";

    /// <summary>Quantizes a dense [N, K] weight block by block.</summary>
    public static Nf4BlockwiseWeight Quantize(Tensor dense, int blockSize = Nf4.DefaultBlockSize)
    {
        var (n, k) = DenseRows.Shape(dense, NameOf(blockSize));
        Checked(k, blockSize);
        var codes = Tensor.Allocate(DType.U8, n, k / 2);
        var scales = Tensor.Allocate(DType.F32, n, k / blockSize);
        DenseRows.ForEachRow(n, k, (r, row, _) =>
        {
            DenseRows.Read(dense, r, row);
            Nf4.Quantize(row, blockSize, codes.Row<byte>(r), scales.Row<float>(r));
        });
        return new Nf4BlockwiseWeight(codes, scales, k, blockSize);
    }

    /// <summary>Why K cannot take blocks of <paramref name="blockSize"/>, or null when it can.</summary>
    public static string? Incompatibility(int inFeatures, int blockSize) => GroupIncompatibility(inFeatures, blockSize);

    private static int Checked(int inFeatures, int blockSize) => Incompatibility(inFeatures, blockSize) is { } reason
        ? throw new ArgumentException($"{NameOf(blockSize)}: {reason}.")
        : blockSize;

    /// <summary>destination[k] = T[q[k]]·scale[k / B], as torchao's NF4Tensor.get_original_weight.</summary>
    private protected override void DequantizeRow(ReadOnlySpan<byte> codes, ReadOnlySpan<float> scales, ReadOnlySpan<float> zeros, Span<float> destination) =>
        Nf4.Dequantize(codes, scales, GroupSize, destination);
}
