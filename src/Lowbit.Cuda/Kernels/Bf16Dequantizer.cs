using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// A quantized device weight (<see cref="CudaWeight"/> layouts) written out as a dense bf16 [N, K] matrix, so
/// prefill (m &gt; 1) runs it through the tensor-core GEMM instead of the SIMT tiles of <see cref="QuantizedGemm{TTile}"/>
/// (measured 1.2-1.4k tok/s at Llama-3-8B shapes). Each element is the reference's f32 dequantized value (v·s,
/// or (q − 8)·s + z) rounded to bf16 (nearest even): the same rounding the GEMM applies to x. One thread 16 bytes of
/// the packed weight (16 byte-format or 32 int4 elements: 16-byte loads, 16-byte stores); K a multiple of 8 (of 32
/// for int4wo). Costs a read of the packed weight and a write and read of the bf16 copy a prefill call. The first
/// version, one thread a pair of elements, ran at about a third of the memory bandwidth: 22 ms of a 2048-token int4wo
/// prefill at Llama-3-8B shapes (docs/gpu.md).
/// </summary>
public sealed class Bf16Dequantizer
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<Uint4>, ArrayView<float>, ArrayView<Uint4>, int, int> _int8;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<Uint4>, ArrayView<float>, ArrayView<Uint4>, int, int> _float8;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<Uint4>, ArrayView<uint>, ArrayView<Uint4>, int, int> _int4;

    public Bf16Dequantizer(Accelerator accelerator)
    {
        _int8 = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<Uint4>, ArrayView<float>, ArrayView<Uint4>, int, int>(RowScaled<Int8PerRowValues>);
        _float8 = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<Uint4>, ArrayView<float>, ArrayView<Uint4>, int, int>(RowScaled<Float8PerRowValues>);
        _int4 = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<Uint4>, ArrayView<uint>, ArrayView<Uint4>, int, int>(Int4Grouped);
    }

    /// <param name="destination">[N, K/2] words of bf16 pairs.</param>
    public void Launch(AcceleratorStream stream, CudaWeight w, ArrayView<uint> destination)
    {
        int n = w.OutFeatures, k = w.InFeatures;
        ArrayView<Uint4> data = w.Data.View, output = destination.Cast<Uint4>();
        ArrayView<uint> scales = w.Scales.View;
        switch (w.Format)
        {
            case CudaFormat.Int8PerRow or CudaFormat.Int8Dynamic:
                _int8(stream, n * ChunksPerRow(k, 16), data, scales.Cast<float>(), output, k, w.RowBytes);
                break;
            case CudaFormat.Float8PerRow:
                _float8(stream, n * ChunksPerRow(k, 16), data, scales.Cast<float>(), output, k, w.RowBytes);
                break;
            case CudaFormat.Int4Grouped:
                _int4(stream, n * (k / 32), data, scales, output, k, w.GroupSize);
                break;
            default:
                throw new NotSupportedException($"No bf16 expansion for {w.FormatName}.");
        }
    }

    /// <summary>True for the formats <see cref="Launch"/> expands.</summary>
    public static bool Supports(CudaFormat format) =>
        format is CudaFormat.Int8PerRow or CudaFormat.Int8Dynamic or CudaFormat.Float8PerRow or CudaFormat.Int4Grouped;

    private static int ChunksPerRow(int k, int elements) => (k + elements - 1) / elements;

    // Thread t: 16 bytes of row r (16 elements from 16·c), written as 32 bytes of bf16; rows start 16-byte aligned. The
    // last chunk of a row with K not a multiple of 16 (K is a multiple of 8 for the GEMM) writes its first half only.
    private static void RowScaled<TValues>(Index1D t, ArrayView<Uint4> data, ArrayView<float> scales, ArrayView<Uint4> destination, int k, int rowBytes)
        where TValues : struct, IByteValues
    {
        // Uniformity.Divergent: the rounding's NaN branch depends on each thread's values.
        int chunks = ChunksPerRow(k, 16), r = Uniformity.Divergent(t) / chunks, c = t - (r * chunks);
        Uint4 q = data[(((long)r * rowBytes) / 16) + c];
        var f = default(TValues);
        float s = scales[r];
        long at = (((long)r * k) / 8) + (2 * c); // 16-byte units of the output ([N, K] bf16, K a multiple of 8)
        destination[at] = new Uint4 { X = Pair(f, q.X, 0, s), Y = Pair(f, q.X, 2, s), Z = Pair(f, q.Y, 0, s), W = Pair(f, q.Y, 2, s) };
        if (16 * c + 8 < k)
            destination[at + 1] = new Uint4 { X = Pair(f, q.Z, 0, s), Y = Pair(f, q.Z, 2, s), Z = Pair(f, q.W, 0, s), W = Pair(f, q.W, 2, s) };
    }

    private static uint Pair<TValues>(TValues f, uint word, int b, float s)
        where TValues : struct, IByteValues => Pack(f.Value(word, b) * s, f.Value(word, b + 1) * s);

    // Thread t: 32 elements of row r (16 bytes of its nibble stream, element k in byte k/2, low nibble for even k), one
    // scale|zero word (groups are 32 or more), written as 64 bytes of bf16.
    private static void Int4Grouped(Index1D t, ArrayView<Uint4> data, ArrayView<uint> scaleZero, ArrayView<Uint4> destination, int k, int groupSize)
    {
        int chunks = k / 32, r = Uniformity.Divergent(t) / chunks, c = t - (r * chunks);
        Uint4 q = data[t.X]; // rows of K/2 bytes, K a multiple of 32: chunk t is 16 bytes at 16·t
        uint pair = scaleZero[((long)r * (k / groupSize)) + (32 * c / groupSize)];
        float s = Int4GroupedGemv.Scale(pair), z = Int4GroupedGemv.Zero(pair);
        long at = 4L * t; // 64 bytes of output a thread
        destination[at] = Nibbles(q.X, s, z);
        destination[at + 1] = Nibbles(q.Y, s, z);
        destination[at + 2] = Nibbles(q.Z, s, z);
        destination[at + 3] = Nibbles(q.W, s, z);
    }

    /// <summary>The 8 elements of a nibble word (nibble i = element i) as bf16: (q − 8)·s + z, rounded once.</summary>
    private static Uint4 Nibbles(uint word, float s, float z) => new()
    {
        X = Pack(Nibble(word, 0, s, z), Nibble(word, 1, s, z)),
        Y = Pack(Nibble(word, 2, s, z), Nibble(word, 3, s, z)),
        Z = Pack(Nibble(word, 4, s, z), Nibble(word, 5, s, z)),
        W = Pack(Nibble(word, 6, s, z), Nibble(word, 7, s, z)),
    };

    private static float Nibble(uint word, int i, float s, float z) => ((Magic.Float((word >> (4 * i)) & 0xFu) - (Magic.Value + 8f)) * s) + z;

    /// <summary>Two floats as bf16 (round to nearest even), the first in the low half.</summary>
    private static uint Pack(float lo, float hi) => DenseElements.ToBf16(lo) | (DenseElements.ToBf16(hi) << 16);
}
