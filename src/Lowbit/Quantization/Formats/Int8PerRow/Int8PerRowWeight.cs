using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>
/// int8 weight-only, symmetric per output row ("int8wo", torchao's Int8WeightOnlyConfig).
/// <para>Layout: <see cref="Data"/> is I8 [N, K] row-major, q[n, k] at byte n·K + k (no padding);
/// <see cref="Scales"/> is [N] in F32, BF16 or F16 (the dense weight's dtype, as torchao keeps it), one per row.
/// W[n, k] ≈ q[n, k]·scale[n], q in [−128, 127], the zero point is 0.</para>
/// <para>Quantization: <see cref="AffineScheme.Int8Symmetric"/> per row: scale = max|W[n, :]| / 127.5
/// (at least f32 eps), q = clamp(round(W·(1/scale)), −128, 127).</para>
/// </summary>
public sealed class Int8PerRowWeight : IWeight
{
    public const string Name = "int8wo";

    /// <summary>Wraps existing tensors (a loaded checkpoint); checks their shapes and dtypes.</summary>
    public Int8PerRowWeight(Tensor data, Tensor scales)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(scales);
        if (data.Rank != 2 || data.DType != DType.I8)
            throw new ArgumentException($"{Name}: data must be I8 [N, K]; got {data}.", nameof(data));
        if (scales.Rank != 1 || scales.Shape[0] != data.Shape[0] || scales.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"{Name}: scales must be F32, BF16 or F16 [{data.Shape[0]}]; got {scales}.", nameof(scales));
        Data = data;
        Scales = scales;
    }

    /// <summary>q: I8 [N, K].</summary>
    public Tensor Data { get; }

    /// <summary>scale: [N], F32, BF16 or F16.</summary>
    public Tensor Scales { get; }

    public int OutFeatures => Data.Shape[0];
    public int InFeatures => Data.Shape[1];
    public string FormatName => Name;
    public long ByteLength => Data.ByteLength + Scales.ByteLength;

    /// <summary>The scheme the weights were quantized with.</summary>
    public AffineScheme Scheme => AffineScheme.Int8Symmetric(Scales.DType);

    /// <summary>Quantizes a dense [N, K] weight row by row; scales keep the weight's dtype.</summary>
    public static Int8PerRowWeight Quantize(Tensor dense) => Quantize(dense, dense?.DType ?? DType.F32);

    /// <summary>Quantizes a dense [N, K] weight row by row with scales in <paramref name="scaleDType"/>.</summary>
    public static Int8PerRowWeight Quantize(Tensor dense, DType scaleDType)
    {
        var (n, k) = DenseRows.Shape(dense, Name);
        var scheme = AffineScheme.Int8Symmetric(scaleDType);
        var data = Tensor.Allocate(DType.I8, n, k);
        var scales = Tensor.Allocate(scaleDType, n);
        DenseRows.ForEachRow(n, k, (r, row, q) =>
        {
            DenseRows.QuantizeGroups(dense, r, row, q, k, scheme, scales, null);
            Span<sbyte> destination = data.Row<sbyte>(r);
            for (int i = 0; i < k; i++)
                destination[i] = (sbyte)q[i];
        });
        return new Int8PerRowWeight(data, scales);
    }

    /// <summary>scale[row] widened to F32.</summary>
    public float Scale(int row) => DenseRows.Scalar(Scales, row);

    /// <summary>The reference: destination[k] = q[row, k]·scale[row] in F32, exactly as torchao's dequantize_affine.</summary>
    public void Dequantize(int row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, OutFeatures);
        if (destination.Length != InFeatures)
            throw new ArgumentException($"destination has {destination.Length} elements; a row has {InFeatures}.", nameof(destination));
        var p = new QParams(Scale(row), 0f);
        var scheme = Scheme;
        ReadOnlySpan<sbyte> q = Data.Row<sbyte>(row);
        for (int i = 0; i < q.Length; i++)
            destination[i] = Affine.Dequantize(q[i], p, scheme);
    }

    public void Dispose()
    {
        Data.Dispose();
        Scales.Dispose();
    }
}
