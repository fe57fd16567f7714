using System.Runtime.Intrinsics.X86;
using Lowbit.Quantization.Primitives;

namespace Lowbit.Tests.Quantization.Primitives;

/// <summary>BitPacking against a bit-by-bit reference of the stream (element i at bits [i·b, (i+1)·b)), for
/// every width 1..8 and every length 0..70 (all tails of the 8-element groups), on the BMI2 and shift paths.</summary>
public class BitPackingTests
{
    public static TheoryData<bool> Paths => Bmi2.X64.IsSupported ? new() { false, true } : new() { false };

    /// <summary>The stream written one bit at a time.</summary>
    private static byte[] ReferencePack(byte[] values, int bits)
    {
        var packed = new byte[((values.Length * bits) + 7) / 8];
        for (int i = 0; i < values.Length; i++)
        {
            for (int k = 0; k < bits; k++)
            {
                int j = (i * bits) + k;
                packed[j / 8] |= (byte)(((values[i] >> k) & 1) << (j % 8));
            }
        }

        return packed;
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void RoundTripsEveryWidthAndLength(bool bmi2)
    {
        var rng = new Random(5);
        for (int bits = 1; bits <= 8; bits++)
        {
            for (int n = 0; n <= 70; n++)
            {
                var values = new byte[n];
                for (int i = 0; i < n; i++)
                    values[i] = (byte)rng.Next(1 << bits);
                int length = BitPacking.PackedLength(n, bits);
                Assert.Equal(((n * bits) + 7) / 8, length);
                var packed = new byte[length];
                Array.Fill(packed, (byte)0xAA); // stale bytes must be overwritten
                BitPacking.Pack(values, bits, packed, bmi2);
                Assert.True(ReferencePack(values, bits).AsSpan().SequenceEqual(packed), $"b={bits} n={n}");
                var unpacked = new byte[n];
                BitPacking.Unpack(packed, bits, unpacked, bmi2);
                Assert.True(values.AsSpan().SequenceEqual(unpacked), $"b={bits} n={n}");
            }
        }
    }

    [Fact]
    public void HandWorkedBytes()
    {
        var p = new byte[1];
        BitPacking.Pack([1, 0, 1, 1, 0, 0, 0, 1], 1, p);
        Assert.Equal(0b1000_1101, p[0]); // element 0 is bit 0

        BitPacking.Pack([0x3, 0x2, 0x1, 0x0], 2, p);
        Assert.Equal(0b00_01_10_11, p[0]);

        p = new byte[2];
        BitPacking.Pack([0xA, 0x5, 0xF], 4, p);
        Assert.Equal([0x5A, 0x0F], p); // element 2k in the low nibble; the unused nibble is zero

        p = new byte[3];
        BitPacking.Pack([0b000001, 0b100010, 0b000011, 0b111111], 6, p);
        // byte0 = v0 | v1<<6 (low 2 bits of v1 = 10); byte1 = v1>>2 | v2<<4; byte2 = v2>>4 | v3<<2
        Assert.Equal([0b10_000001, 0b0011_1000, 0b111111_00], p);

        p = new byte[2];
        BitPacking.Pack([0b101, 0b011, 0b111, 0b001, 0b110], 3, p);
        // bits 0-2 = 101, 3-5 = 011, 6-8 = 111, 9-11 = 001, 12-14 = 110
        Assert.Equal([0b11_011_101, 0b0_110_001_1], p);
    }

    [Fact]
    public void RejectsValuesThatDoNotFit()
    {
        for (int bits = 1; bits <= 7; bits++)
        {
            foreach (int n in new[] { 3, 8, 19 })
            {
                var values = new byte[n];
                values[n - 2] = (byte)(1 << bits);
                var e = Assert.Throws<ArgumentException>(() => BitPacking.Pack(values, bits, new byte[BitPacking.PackedLength(n, bits)]));
                Assert.Contains($"values[{n - 2}] = {1 << bits} does not fit in {bits} bits", e.Message);
            }
        }
    }

    [Fact]
    public void RejectsWrongLengthsAndWidths()
    {
        var e = Assert.Throws<ArgumentException>(() => BitPacking.Pack(new byte[10], 3, new byte[3]));
        Assert.Contains("10 3-bit codes pack into", e.Message);
        Assert.Contains("= 4 bytes, but packed has 3", e.Message);
        Assert.Throws<ArgumentException>(() => BitPacking.Pack(new byte[10], 3, new byte[5]));
        Assert.Throws<ArgumentException>(() => BitPacking.Unpack(new byte[3], 3, new byte[10]));
        Assert.Throws<ArgumentOutOfRangeException>(() => BitPacking.Pack(new byte[8], 0, new byte[0]));
        Assert.Throws<ArgumentOutOfRangeException>(() => BitPacking.PackedLength(8, 9));
        Assert.Throws<ArgumentOutOfRangeException>(() => BitPacking.PackedLength(-1, 4));
        Assert.Equal(1_879_048_192, BitPacking.PackedLength(int.MaxValue, 7));
        Assert.Equal(int.MaxValue, BitPacking.PackedLength(int.MaxValue, 8));
    }
}
