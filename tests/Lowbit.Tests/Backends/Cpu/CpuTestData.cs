using Lowbit.Backends.Cpu;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cpu;

/// <summary>Shared inputs of the CPU kernel tests: levels by name (SimdLevel is internal, so theories take
/// its name), seeded random data, and weight tensors with their exact values as doubles.</summary>
internal static class CpuTestData
{
    /// <summary>Every length from 1 to twice the widest vector (16 floats) plus one: every tail case.</summary>
    public static readonly int[] ElementwiseLengths = [.. Enumerable.Range(1, 33), 1000];

    /// <summary>Three threads on a two-core machine: uneven chunks, and workers that really sleep.</summary>
    public static readonly CpuThreadPool Pool3 = new(3);

    public static SimdLevel Level(string name)
    {
        SimdLevel level = Enum.Parse<SimdLevel>(name);
        if (!CpuCapabilities.IsSupported(level))
            Assert.Skip($"This CPU does not support {name}.");
        return level;
    }

    public static float[] Floats(Random rng, int n, float min = -1f, float max = 1f)
    {
        var values = new float[n];
        for (int i = 0; i < n; i++)
            values[i] = min + ((max - min) * rng.NextSingle());
        return values;
    }

    /// <summary>A [rows, cols] tensor of random values in [-1, 1) stored in <paramref name="dtype"/>, and the
    /// exact value of every element as a double (bf16 and f16 widen exactly).</summary>
    public static Tensor Weights(DType dtype, int rows, int cols, Random rng, out double[] exact)
    {
        var tensor = Tensor.Allocate(dtype, rows, cols);
        float[] values = Floats(rng, rows * cols);
        exact = new double[values.Length];
        for (int i = 0; i < values.Length; i++)
        {
            switch (dtype)
            {
                case DType.F32:
                    tensor.AsSpan<float>()[i] = values[i];
                    exact[i] = values[i];
                    break;
                case DType.BF16:
                    ushort bits = (ushort)(BitConverter.SingleToUInt32Bits(values[i]) >> 16);
                    tensor.AsSpan<ushort>()[i] = bits;
                    exact[i] = BitConverter.UInt32BitsToSingle((uint)bits << 16);
                    break;
                case DType.F16:
                    Half half = (Half)values[i];
                    tensor.AsSpan<Half>()[i] = half;
                    exact[i] = (double)half;
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(dtype), dtype, null);
            }
        }

        return tensor;
    }
}
