using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace Lowbit.Quantization.Primitives;

/// <summary>
/// Packs b-bit unsigned codes (1 ≤ b ≤ 8; torchao's uint1..uint7 of UIntXWeightOnlyConfig, and the FP6/FP4
/// codes of <see cref="FloatX"/>) into a dense little-endian bit stream: element i occupies stream bits
/// [i·b, (i+1)·b), least significant bit first, and stream bit j is bit (j mod 8) of byte ⌊j/8⌋. So 4-bit
/// codes put element 2k in the low nibble of byte k (as torchao's MX <c>pack_uint4</c>), and 6-bit codes put
/// 4 elements in 3 bytes: byte0 = v0 | v1&lt;&lt;6, byte1 = v1&gt;&gt;2 | v2&lt;&lt;4, byte2 = v2&gt;&gt;4 | v3&lt;&lt;2.
/// Packed length = ⌈n·b/8⌉ bytes; the unused high bits of the last byte are written as zero and ignored on
/// unpacking. (torchao's own uintx layout shards bits across tensor rows instead; this stream is simpler and
/// has the same size.)
/// <para>Every 8 elements fill exactly b bytes, so both directions go 8 elements at a time through one 64-bit
/// word (BMI2 pext/pdep where the CPU has them, shifts otherwise), with a bit-serial tail.</para>
/// </summary>
public static class BitPacking
{
    private static readonly bool HasBmi2 = Bmi2.X64.IsSupported;

    /// <summary>⌈count·bits/8⌉ (never more than count, as bits ≤ 8).</summary>
    /// <exception cref="ArgumentOutOfRangeException">count &lt; 0 or bits outside 1..8.</exception>
    public static int PackedLength(int count, int bits)
    {
        CheckBits(bits);
        if (count < 0)
            throw new ArgumentOutOfRangeException(nameof(count), count, "BitPacking: the element count must be non-negative.");
        return (int)((((long)count * bits) + 7) >> 3);
    }

    /// <summary>Writes values (each &lt; 2^bits) to packed as the stream described on the type.</summary>
    /// <exception cref="ArgumentException">packed.Length ≠ PackedLength(values.Length, bits), or a value ≥ 2^bits.</exception>
    public static void Pack(ReadOnlySpan<byte> values, int bits, Span<byte> packed) => Pack(values, bits, packed, HasBmi2);

    /// <summary>Reads values.Length codes of the given width from packed.</summary>
    /// <exception cref="ArgumentException">packed.Length ≠ PackedLength(values.Length, bits).</exception>
    public static void Unpack(ReadOnlySpan<byte> packed, int bits, Span<byte> values) => Unpack(packed, bits, values, HasBmi2);

    /// <summary>Pack with the word path forced to pext (bmi2) or to shifts, so tests run both.</summary>
    internal static void Pack(ReadOnlySpan<byte> values, int bits, Span<byte> packed, bool bmi2)
    {
        CheckPackedLength(values.Length, bits, packed.Length, nameof(packed));
        ulong lanes = LaneMask(bits);
        int groups = values.Length / 8, g = 0;
        for (; g < groups; g++)
        {
            ulong v = BinaryPrimitives.ReadUInt64LittleEndian(values.Slice(g * 8, 8));
            if ((v & ~lanes) != 0)
                ThrowValueTooLarge(values, bits);
            ulong word = bmi2 ? Bmi2.X64.ParallelBitExtract(v, lanes) : Gather(v, bits);
            Span<byte> dst = packed.Slice(g * bits);
            if (dst.Length >= 8)
                BinaryPrimitives.WriteUInt64LittleEndian(dst, word); // the bytes past `bits` are rewritten by the next group
            else
                WriteLow(word, dst[..bits]);
        }

        ulong acc = 0;
        int held = 0, o = g * bits;
        for (int i = g * 8; i < values.Length; i++)
        {
            if (values[i] >> bits != 0)
                ThrowValueTooLarge(values, bits);
            acc |= (ulong)values[i] << held;
            held += bits;
            for (; held >= 8; held -= 8, acc >>= 8)
                packed[o++] = (byte)acc;
        }

        if (held > 0)
            packed[o] = (byte)acc;
    }

    internal static void Unpack(ReadOnlySpan<byte> packed, int bits, Span<byte> values, bool bmi2)
    {
        CheckPackedLength(values.Length, bits, packed.Length, nameof(packed));
        ulong lanes = LaneMask(bits);
        int groups = values.Length / 8, g = 0;
        for (; g < groups; g++)
        {
            ReadOnlySpan<byte> src = packed.Slice(g * bits);
            ulong word = src.Length >= 8 ? BinaryPrimitives.ReadUInt64LittleEndian(src) : ReadLow(src[..bits]);
            ulong v = bmi2 ? Bmi2.X64.ParallelBitDeposit(word, lanes) : Scatter(word, bits);
            BinaryPrimitives.WriteUInt64LittleEndian(values.Slice(g * 8, 8), v);
        }

        ulong acc = 0;
        int held = 0, p = g * bits, mask = (1 << bits) - 1;
        for (int i = g * 8; i < values.Length; i++)
        {
            if (held < bits)
            {
                acc |= (ulong)packed[p++] << held;
                held += 8;
            }

            values[i] = (byte)((int)acc & mask);
            acc >>= bits;
            held -= bits;
        }
    }

    /// <summary>The low `bits` bits of each of the 8 byte lanes.</summary>
    private static ulong LaneMask(int bits) => 0x0101_0101_0101_0101UL * (ulong)((1 << bits) - 1);

    /// <summary>pext(v, LaneMask(bits)) without BMI2: lane i's b bits to bits [i·b, (i+1)·b).</summary>
    private static ulong Gather(ulong v, int bits)
    {
        ulong word = 0;
        for (int i = 0; i < 8; i++)
            word |= ((v >> (8 * i)) & 0xFF) << (i * bits);
        return word;
    }

    /// <summary>pdep(word, LaneMask(bits)) without BMI2.</summary>
    private static ulong Scatter(ulong word, int bits)
    {
        ulong v = 0, mask = (1UL << bits) - 1;
        for (int i = 0; i < 8; i++)
            v |= ((word >> (i * bits)) & mask) << (8 * i);
        return v;
    }

    private static void WriteLow(ulong word, Span<byte> dst)
    {
        for (int i = 0; i < dst.Length; i++)
            dst[i] = (byte)(word >> (8 * i));
    }

    private static ulong ReadLow(ReadOnlySpan<byte> src)
    {
        ulong word = 0;
        for (int i = 0; i < src.Length; i++)
            word |= (ulong)src[i] << (8 * i);
        return word;
    }

    private static void CheckBits(int bits)
    {
        if (bits is < 1 or > 8)
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "BitPacking: codes are 1 to 8 bits wide.");
    }

    private static void CheckPackedLength(int count, int bits, int packedLength, string name)
    {
        int expected = PackedLength(count, bits);
        if (packedLength != expected)
            throw new ArgumentException($"BitPacking: {count} {bits}-bit codes pack into ⌈{count}·{bits}/8⌉ = {expected} bytes, but {name} has {packedLength}.", name);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowValueTooLarge(ReadOnlySpan<byte> values, int bits)
    {
        int i = 0;
        while (values[i] >> bits == 0)
            i++;
        throw new ArgumentException($"BitPacking: values[{i}] = {values[i]} does not fit in {bits} bits (the largest {bits}-bit code is {(1 << bits) - 1}).", nameof(values));
    }
}
