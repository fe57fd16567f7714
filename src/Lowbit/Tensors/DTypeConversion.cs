using System.Runtime.InteropServices;

namespace Lowbit.Tensors;

/// <summary>Exact widening of F32/BF16/F16 data to float (bf16 is the top half of an f32).</summary>
public static class DTypeConversion
{
    public static float BFloat16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Round-to-nearest-even f32 → bf16, NaN kept quiet (as torch does).</summary>
    public static ushort SingleToBFloat16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
            return (ushort)((bits >> 16) | 0x40);
        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>Widens a whole F32, BF16 or F16 tensor into <paramref name="destination"/>.</summary>
    public static void ToSingle(Tensor source, Span<float> destination)
    {
        if (destination.Length != source.ElementCount)
            throw new ArgumentException($"destination has {destination.Length} elements; {source} has {source.ElementCount}.", nameof(destination));
        ToSingle(source.AsBytes(), source.DType, destination);
    }

    /// <summary>Widens raw F32, BF16 or F16 bytes into <paramref name="destination"/>.</summary>
    public static void ToSingle(ReadOnlySpan<byte> source, DType dtype, Span<float> destination)
    {
        switch (dtype)
        {
            case DType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case DType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < bf.Length; i++)
                    destination[i] = BFloat16ToSingle(bf[i]);
                break;
            case DType.F16:
                var h = MemoryMarshal.Cast<byte, Half>(source);
                for (int i = 0; i < h.Length; i++)
                    destination[i] = (float)h[i];
                break;
            default:
                throw new NotSupportedException($"Cannot widen {dtype} to F32.");
        }
    }

    /// <summary>Narrows floats to BF16 or F16 bits (round to nearest even), one ushort per element.</summary>
    public static void FromSingle(ReadOnlySpan<float> source, DType dtype, Span<ushort> destination)
    {
        if (destination.Length != source.Length)
            throw new ArgumentException($"destination has {destination.Length} elements; source has {source.Length}.", nameof(destination));
        switch (dtype)
        {
            case DType.BF16:
                for (int i = 0; i < source.Length; i++)
                    destination[i] = SingleToBFloat16(source[i]);
                break;
            case DType.F16:
                for (int i = 0; i < source.Length; i++)
                    destination[i] = BitConverter.HalfToUInt16Bits((Half)source[i]);
                break;
            default:
                throw new NotSupportedException($"Cannot narrow F32 to {dtype}.");
        }
    }
}
