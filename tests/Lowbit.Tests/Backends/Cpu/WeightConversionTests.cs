using Lowbit.Backends.Cpu;

namespace Lowbit.Tests.Backends.Cpu;

/// <summary>The in-register bf16 and f16 widening, over all 65536 bit patterns, must equal the exact
/// conversion (bf16: the top half of an f32; f16: (float)Half, subnormals, infinities and NaNs included).</summary>
public unsafe class WeightConversionTests
{
    [Theory]
    [InlineData("Scalar")]
    [InlineData("Avx2")]
    [InlineData("Avx512")]
    public void EveryHalfAndBf16BitPatternWidensExactly(string levelName)
    {
        SimdLevel level = CpuTestData.Level(levelName);
        var bits = new ushort[65536];
        for (int i = 0; i < bits.Length; i++)
            bits[i] = (ushort)i;
        var f16 = new float[65536];
        var bf16 = new float[65536];
        fixed (ushort* pb = bits)
        fixed (float* ph = f16)
        fixed (float* pf = bf16)
        {
            for (int i = 0; i < bits.Length; i += 16)
            {
                switch (level)
                {
                    case SimdLevel.Avx512:
                        Simd512.Store(ph + i, Simd512.LoadF16(pb + i));
                        Simd512.Store(pf + i, Simd512.LoadBf16(pb + i));
                        break;
                    case SimdLevel.Avx2:
                        for (int j = 0; j < 16; j += 8)
                        {
                            Simd256.Store(ph + i + j, Simd256.LoadF16(pb + i + j));
                            Simd256.Store(pf + i + j, Simd256.LoadBf16(pb + i + j));
                        }

                        break;
                    default:
                        for (int j = 0; j < 16; j++)
                        {
                            ph[i + j] = SimdScalar.LoadF16(pb + i + j);
                            pf[i + j] = SimdScalar.LoadBf16(pb + i + j);
                        }

                        break;
                }
            }
        }

        for (int i = 0; i < bits.Length; i++)
        {
            float expectedHalf = (float)BitConverter.UInt16BitsToHalf((ushort)i);
            float expectedBf16 = BitConverter.UInt32BitsToSingle((uint)i << 16);
            if (float.IsNaN(expectedHalf))
                Assert.True(float.IsNaN(f16[i]), $"f16 0x{i:X4}: {f16[i]} should be NaN");
            else
                Assert.True(BitConverter.SingleToUInt32Bits(expectedHalf) == BitConverter.SingleToUInt32Bits(f16[i]), $"f16 0x{i:X4}: {f16[i]} != {expectedHalf}");
            if (float.IsNaN(expectedBf16))
                Assert.True(float.IsNaN(bf16[i]), $"bf16 0x{i:X4}: {bf16[i]} should be NaN");
            else
                Assert.True(BitConverter.SingleToUInt32Bits(expectedBf16) == BitConverter.SingleToUInt32Bits(bf16[i]), $"bf16 0x{i:X4}: {bf16[i]} != {expectedBf16}");
        }
    }
}
