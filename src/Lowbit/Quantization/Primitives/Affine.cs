using Lowbit.Tensors;

namespace Lowbit.Quantization.Primitives;

/// <summary>
/// torchao's affine quantization primitives (torchao/quantization/quant_primitives.py), with its arithmetic:
/// <list type="bullet">
/// <item>ChooseQParams, Int domain (_choose_qparams_affine): min⁻ = min(min(x), 0), max⁺ = max(max(x), 0).
/// Symmetric: s = max(−min⁻, max⁺) / ((qmax − qmin) / 2), z = trunc((qmax + qmin + 1) / 2).
/// Asymmetric: s = (max⁺ − min⁻) / (qmax − qmin), z = clamp(qmin − round(min⁻ / s), qmin, qmax).
/// Then s = max(s, eps).</item>
/// <item>ChooseQParams, Float domain (_choose_qparams_affine_tinygemm): s = max((max − min) / (qmax − qmin), eps),
/// z = min + s·mid, mid = (qmax + qmin + 1) / 2; zero need not be representable.</item>
/// <item>Quantize, Int: q = clamp(round(x·(1/s)) + z, qmin, qmax). Float: q = clamp(round((x − (z − s·mid)) / s), qmin, qmax).</item>
/// <item>Dequantize (to F32), Int: (q − z)·s. Float: (q − mid)·s + z.</item>
/// </list>
/// round is round-half-to-even (torch.round). As in torch, each operation rounds to its operands' dtype:
/// statistics of a BF16 input are computed in BF16 (every op widened to f32 and rounded back), s and z are
/// then rounded to the scheme's dtypes, and x op s runs in the promoted dtype (F32 unless both are the same
/// half type). Inputs arrive as floats that hold exact values of <c>inputDType</c>.
/// </summary>
public static class Affine
{
    /// <summary>The quantization parameters of one block (torchao's choose_qparams_affine for one block).</summary>
    public static QParams ChooseQParams(ReadOnlySpan<float> block, AffineScheme scheme, DType inputDType = DType.F32)
    {
        ArgumentNullException.ThrowIfNull(scheme);
        if (block.IsEmpty)
            throw new ArgumentException("A block has at least one element.", nameof(block));
        float min = float.PositiveInfinity, max = float.NegativeInfinity;
        foreach (float v in block)
        {
            if (float.IsNaN(v))
                throw new ArgumentException("Cannot quantize NaN.", nameof(block));
            min = MathF.Min(min, v);
            max = MathF.Max(max, v);
        }

        DType dt = inputDType;
        int qmin = scheme.Range.QuantMin, qmax = scheme.Range.QuantMax;
        float eps = In(dt, scheme.Eps);
        float scale, zero;
        if (scheme.Domain == ZeroPointDomain.Float)
        {
            scale = MathF.Max(In(dt, In(dt, max - min) / (qmax - qmin)), eps);
            zero = In(dt, min + In(dt, scale * scheme.Range.MidPoint));
            return new QParams(In(scheme.ScaleDType, scale), In(scheme.ZeroPointDType, zero));
        }

        float minNeg = MathF.Min(min, 0f), maxPos = MathF.Max(max, 0f);
        if (scheme.Mapping == MappingType.Symmetric)
        {
            float amax = MathF.Max(-minNeg, maxPos);
            scale = MathF.Max(In(dt, amax / ((qmax - qmin) / 2f)), eps);
            zero = (qmax + qmin + 1) / 2; // Python's int() of (qmax + qmin + 1) / 2 truncates toward zero, as C# does
        }
        else
        {
            scale = MathF.Max(In(dt, In(dt, maxPos - minNeg) / (qmax - qmin)), eps);
            zero = Math.Clamp(qmin - MathF.Round(In(dt, minNeg / scale)), qmin, qmax);
        }

        return new QParams(In(scheme.ScaleDType, scale), zero);
    }

    /// <summary>destination[i] = the quantized value of block[i] (torchao's quantize_affine /
    /// quantize_affine_tinygemm for one block).</summary>
    public static void Quantize(ReadOnlySpan<float> block, QParams qparams, AffineScheme scheme, DType inputDType, Span<int> destination)
    {
        ArgumentNullException.ThrowIfNull(scheme);
        if (destination.Length != block.Length)
            throw new ArgumentException($"destination has {destination.Length} elements; the block has {block.Length}.", nameof(destination));
        int qmin = scheme.Range.QuantMin, qmax = scheme.Range.QuantMax;
        DType sdt = scheme.ScaleDType;
        float s = qparams.Scale;
        if (scheme.Domain == ZeroPointDomain.Int)
        {
            float inverse = In(sdt, 1f / s); // torch: 1.0 / scale keeps scale's dtype
            DType product = Promote(inputDType, sdt);
            for (int i = 0; i < block.Length; i++)
                destination[i] = (int)Math.Clamp(MathF.Round(In(product, block[i] * inverse)) + qparams.ZeroPoint, qmin, qmax);
        }
        else
        {
            DType parameters = Promote(sdt, scheme.ZeroPointDType);
            float minVal = In(parameters, qparams.ZeroPoint - In(sdt, s * scheme.Range.MidPoint));
            DType compute = Promote(inputDType, parameters);
            for (int i = 0; i < block.Length; i++)
                destination[i] = (int)Math.Clamp(MathF.Round(In(compute, In(compute, block[i] - minVal) / s)), qmin, qmax);
        }
    }

    /// <summary>One quantized value back to F32 (torchao's dequantize_affine / dequantize_affine_tinygemm with
    /// output_dtype float32).</summary>
    public static float Dequantize(int q, QParams qparams, AffineScheme scheme) => scheme.Domain == ZeroPointDomain.Int
        ? (q - (int)qparams.ZeroPoint) * qparams.Scale
        : ((q - scheme.Range.MidPoint) * qparams.Scale) + qparams.ZeroPoint;

    /// <summary>destination[i] = <see cref="Dequantize(int, QParams, AffineScheme)"/> of block[i].</summary>
    public static void Dequantize(ReadOnlySpan<int> block, QParams qparams, AffineScheme scheme, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(scheme);
        if (destination.Length != block.Length)
            throw new ArgumentException($"destination has {destination.Length} elements; the block has {block.Length}.", nameof(destination));
        for (int i = 0; i < block.Length; i++)
            destination[i] = Dequantize(block[i], qparams, scheme);
    }

    /// <summary>The parameters of every block of a row-major [rows, columns] tensor at granularity
    /// <paramref name="granularity"/>; destination[b] belongs to elements [b·L, (b + 1)·L).</summary>
    public static void ChooseQParams(ReadOnlySpan<float> input, int rows, int columns, Granularity granularity, AffineScheme scheme,
        DType inputDType, Span<QParams> destination)
    {
        int length = BlockLength(input.Length, rows, columns, granularity);
        if (destination.Length != input.Length / length)
            throw new ArgumentException($"destination has {destination.Length} entries; {granularity} of [{rows}, {columns}] has {input.Length / length} blocks.", nameof(destination));
        for (int b = 0; b < destination.Length; b++)
            destination[b] = ChooseQParams(input.Slice(b * length, length), scheme, inputDType);
    }

    /// <summary>Quantizes a row-major [rows, columns] tensor with one <see cref="QParams"/> per block.</summary>
    public static void Quantize(ReadOnlySpan<float> input, int rows, int columns, Granularity granularity, AffineScheme scheme,
        DType inputDType, ReadOnlySpan<QParams> qparams, Span<int> destination)
    {
        int length = BlockLength(input.Length, rows, columns, granularity);
        if (qparams.Length != input.Length / length || destination.Length != input.Length)
            throw new ArgumentException($"{granularity} of [{rows}, {columns}] needs {input.Length / length} qparams and {input.Length} outputs; got {qparams.Length} and {destination.Length}.");
        for (int b = 0; b < qparams.Length; b++)
            Quantize(input.Slice(b * length, length), qparams[b], scheme, inputDType, destination.Slice(b * length, length));
    }

    /// <summary>Dequantizes a row-major [rows, columns] tensor with one <see cref="QParams"/> per block.</summary>
    public static void Dequantize(ReadOnlySpan<int> input, int rows, int columns, Granularity granularity, AffineScheme scheme,
        ReadOnlySpan<QParams> qparams, Span<float> destination)
    {
        int length = BlockLength(input.Length, rows, columns, granularity);
        if (qparams.Length != input.Length / length || destination.Length != input.Length)
            throw new ArgumentException($"{granularity} of [{rows}, {columns}] needs {input.Length / length} qparams and {input.Length} outputs; got {qparams.Length} and {destination.Length}.");
        for (int b = 0; b < qparams.Length; b++)
            Dequantize(input.Slice(b * length, length), qparams[b], scheme, destination.Slice(b * length, length));
    }

    /// <summary>v rounded to the nearest value of <paramref name="dtype"/> (half to even).</summary>
    internal static float In(DType dtype, float v) => dtype switch
    {
        DType.F32 => v,
        DType.BF16 => DTypeConversion.BFloat16ToSingle(DTypeConversion.SingleToBFloat16(v)),
        DType.F16 => (float)(Half)v,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Affine arithmetic runs in F32, BF16 or F16."),
    };

    /// <summary>torch's type promotion between two float dtypes: the same half type stays, anything else is F32.</summary>
    private static DType Promote(DType a, DType b) => a == b ? a : DType.F32;

    private static int BlockLength(int elements, int rows, int columns, Granularity granularity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        if ((long)rows * columns != elements)
            throw new ArgumentException($"The input has {elements} elements; [{rows}, {columns}] has {(long)rows * columns}.");
        return checked((int)granularity.BlockLength(rows, columns));
    }
}
