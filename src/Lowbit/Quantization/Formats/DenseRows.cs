using Lowbit.Quantization.Primitives;
using Lowbit.Tensors;

namespace Lowbit.Quantization.Formats;

/// <summary>Reads a dense weight [N, K] (F32, BF16, F16) one row at a time as floats: formats quantize from
/// these rows, so a memory-mapped checkpoint is never widened whole.</summary>
internal static unsafe class DenseRows
{
    /// <summary>Checks that <paramref name="dense"/> is a 2-D F32/BF16/F16 weight; returns (N, K).</summary>
    public static (int N, int K) Shape(Tensor dense, string format)
    {
        ArgumentNullException.ThrowIfNull(dense);
        if (dense.Rank != 2 || dense.DType is not (DType.F32 or DType.BF16 or DType.F16))
            throw new ArgumentException($"{format} quantizes a 2-D F32, BF16 or F16 weight [N, K]; got {dense}.", nameof(dense));
        if (dense.Shape[0] == 0 || dense.Shape[1] == 0)
            throw new ArgumentException($"{format}: the weight {dense} is empty.", nameof(dense));
        return (dense.Shape[0], dense.Shape[1]);
    }

    /// <summary>Runs <paramref name="quantizeRow"/>(row, f32 scratch [K], int scratch [K]) for every row, rows
    /// spread over the cores (each row writes only its own output), with scratch arrays per worker.</summary>
    public static void ForEachRow(int rows, int k, Action<int, float[], int[]> quantizeRow) =>
        Parallel.For(0, rows, () => (new float[k], new int[k]), (r, _, scratch) =>
        {
            quantizeRow(r, scratch.Item1, scratch.Item2);
            return scratch;
        }, _ => { });

    /// <summary>destination = row <paramref name="row"/> of <paramref name="dense"/>, widened exactly.</summary>
    public static void Read(Tensor dense, int row, Span<float> destination)
    {
        int k = dense.Shape[1], size = dense.DType.Size();
        var bytes = new ReadOnlySpan<byte>((byte*)dense.Data + ((nint)row * k * size), k * size);
        DTypeConversion.ToSingle(bytes, dense.DType, destination);
    }

    /// <summary>Reads row <paramref name="r"/> into <paramref name="row"/> and quantizes it group by group with the
    /// affine primitives: codes into <paramref name="q"/>, group g's scale at element r·(K/G) + g of
    /// <paramref name="scales"/> and, where <paramref name="zeros"/> is not null, its zero point there.</summary>
    public static void QuantizeGroups(Tensor dense, int r, float[] row, int[] q, int groupSize, AffineScheme scheme, Tensor scales, Tensor? zeros)
    {
        Read(dense, r, row);
        int groups = row.Length / groupSize;
        for (int g = 0; g < groups; g++)
        {
            var block = new ReadOnlySpan<float>(row, g * groupSize, groupSize);
            QParams p = Affine.ChooseQParams(block, scheme, dense.DType);
            Affine.Quantize(block, p, scheme, dense.DType, q.AsSpan(g * groupSize, groupSize));
            SetScalar(scales, ((long)r * groups) + g, p.Scale);
            if (zeros is not null)
                SetScalar(zeros, ((long)r * groups) + g, p.ZeroPoint);
        }
    }

    /// <summary>Element <paramref name="index"/> of an F32, BF16 or F16 vector, widened.</summary>
    public static float Scalar(Tensor vector, long index) => vector.DType switch
    {
        DType.F32 => ((float*)vector.Data)[index],
        DType.BF16 => DTypeConversion.BFloat16ToSingle(((ushort*)vector.Data)[index]),
        DType.F16 => (float)((Half*)vector.Data)[index],
        _ => throw new NotSupportedException($"{vector} is not a float tensor."),
    };

    /// <summary>Stores <paramref name="value"/> (already exact in the dtype) at <paramref name="index"/>.</summary>
    public static void SetScalar(Tensor vector, long index, float value)
    {
        switch (vector.DType)
        {
            case DType.F32:
                ((float*)vector.Data)[index] = value;
                break;
            case DType.BF16:
                ((ushort*)vector.Data)[index] = DTypeConversion.SingleToBFloat16(value);
                break;
            case DType.F16:
                ((Half*)vector.Data)[index] = (Half)value;
                break;
            default:
                throw new NotSupportedException($"{vector} is not a float tensor.");
        }
    }
}
