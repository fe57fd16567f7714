using Lowbit.Tensors;

namespace Lowbit.Backends.Cpu;

/// <summary>How a kernel reads one weight dtype: <c>Load</c> returns TS.Count consecutive elements of a row
/// as f32 in registers, so bf16/f16 weights are never expanded into f32 copies in memory. Offsets are
/// <c>nint</c> element indices: a row may start past 2^31 bytes (a 128256×4096 bf16 head is 1 GB).</summary>
internal unsafe interface IWeightType
{
    static abstract DType DType { get; }

    /// <summary>Bytes per element.</summary>
    static abstract int Size { get; }

    static abstract TV Load<TS, TV>(byte* row, nint k)
        where TS : ISimd<TV>
        where TV : unmanaged;
}

internal unsafe struct F32Weights : IWeightType
{
    public static DType DType => DType.F32;

    public static int Size => 4;

    public static TV Load<TS, TV>(byte* row, nint k)
        where TS : ISimd<TV>
        where TV : unmanaged => TS.Load((float*)row + k);
}

internal unsafe struct Bf16Weights : IWeightType
{
    public static DType DType => DType.BF16;

    public static int Size => 2;

    public static TV Load<TS, TV>(byte* row, nint k)
        where TS : ISimd<TV>
        where TV : unmanaged => TS.LoadBf16((ushort*)row + k);
}

internal unsafe struct F16Weights : IWeightType
{
    public static DType DType => DType.F16;

    public static int Size => 2;

    public static TV Load<TS, TV>(byte* row, nint k)
        where TS : ISimd<TV>
        where TV : unmanaged => TS.LoadF16((ushort*)row + k);
}
