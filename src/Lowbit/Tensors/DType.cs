namespace Lowbit.Tensors;

/// <summary>Element types a tensor can hold. Packed low-bit weights live in byte tensors (U8) and
/// are described by their weight format, not by a dtype of their own.</summary>
public enum DType
{
    F32,
    BF16,
    F16,
    I8,
    U8,
    I32,
    I64,
}

public static class DTypes
{
    /// <summary>Bytes per element.</summary>
    public static int Size(this DType dtype) => dtype switch
    {
        DType.F32 or DType.I32 => 4,
        DType.BF16 or DType.F16 => 2,
        DType.I8 or DType.U8 => 1,
        DType.I64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null),
    };

    /// <summary>The name safetensors uses in its header ("F32", "BF16", ...).</summary>
    public static string SafetensorsName(this DType dtype) => dtype.ToString();

    /// <summary>Parses a safetensors dtype name; null when Lowbit cannot hold that dtype.</summary>
    public static DType? FromSafetensorsName(string name) => name switch
    {
        "F32" => DType.F32,
        "BF16" => DType.BF16,
        "F16" => DType.F16,
        "I8" => DType.I8,
        "U8" => DType.U8,
        "I32" => DType.I32,
        "I64" => DType.I64,
        _ => null,
    };
}
