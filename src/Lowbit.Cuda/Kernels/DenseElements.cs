using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>Sixteen bytes that ILGPU loads with one <c>ld.global.v4.b32</c> (ILGPU-NOTES.md): the unit of
/// every weight stream.</summary>
public struct Uint4
{
    public uint X, Y, Z, W;
}

/// <summary>Four floats, loaded as one 16-byte vector.</summary>
public struct Float4
{
    public float X, Y, Z, W;
}

/// <summary>
/// Reading dense F32/BF16/F16 data that sits in device memory as 32-bit words (a weight buffer is
/// <c>ArrayView&lt;uint&gt;</c> whatever its dtype): element i of a 16-bit tensor is the low half of word
/// i/2 when i is even (little-endian), the high half when odd. The dtype comes in as a
/// <see cref="SpecializedValue{T}"/> so each kernel's PTX holds one path only.
/// </summary>
public static class DenseElements
{
    public const int F32 = 0, BF16 = 1, F16 = 2;

    public static int Code(Lowbit.Tensors.DType dtype) => dtype switch
    {
        Lowbit.Tensors.DType.F32 => F32,
        Lowbit.Tensors.DType.BF16 => BF16,
        Lowbit.Tensors.DType.F16 => F16,
        _ => throw new NotSupportedException($"The CUDA backend reads F32, BF16 or F16 tensors; got {dtype}."),
    };

    /// <summary>Elements of this dtype in one 16-byte vector.</summary>
    public static int PerVector(int code) => code == F32 ? 4 : 8;

    /// <summary>bf16 is the top half of an f32: widening is a 16-bit shift.</summary>
    public static float Bf16(uint bits16) => Interop.IntAsFloat(bits16 << 16);

    /// <summary>f32 → bf16 bits, round to nearest even, NaN kept quiet (as DTypeConversion.SingleToBFloat16).</summary>
    public static uint ToBf16(float v)
    {
        uint bits = Interop.FloatAsInt(v);
        if ((bits & 0x7FFFFFFFu) > 0x7F800000u)
            return (bits >> 16) | 0x40u;
        return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    }

    /// <summary>IEEE half to float: the exponent and mantissa moved into an f32's place are off by a bias
    /// of 2^112, which one multiply restores, exactly for normals and subnormals; infinities and NaNs
    /// (exponent 31) are rebuilt. 0x77800000 is 2^112.</summary>
    public static float F16Bits(uint bits16)
    {
        float f = Interop.IntAsFloat((bits16 & 0x7FFFu) << 13) * Interop.IntAsFloat(0x77800000u);
        if ((bits16 & 0x7C00u) == 0x7C00u)
            f = Interop.IntAsFloat(0x7F800000u | ((bits16 & 0x3FFu) << 13));
        return (bits16 & 0x8000u) != 0 ? -f : f;
    }

    /// <summary>Low (even) element of a word of two 16-bit values.</summary>
    public static float Low(uint word, int code) => code == BF16 ? Interop.IntAsFloat(word << 16) : F16Bits(word & 0xFFFFu);

    /// <summary>High (odd) element of a word of two 16-bit values.</summary>
    public static float High(uint word, int code) => code == BF16 ? Interop.IntAsFloat(word & 0xFFFF0000u) : F16Bits(word >> 16);

    /// <summary>Element <paramref name="index"/> (64-bit: a weight can pass 2^31 elements' bytes).</summary>
    public static float Load(ArrayView<uint> words, long index, int code)
    {
        if (code == F32)
            return Interop.IntAsFloat(words[index]);
        uint word = words[index >> 1];
        return (index & 1) == 0 ? Low(word, code) : High(word, code);
    }
}
