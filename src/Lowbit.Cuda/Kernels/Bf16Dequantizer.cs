using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// A quantized device weight (<see cref="CudaWeight"/> layouts) written out as a dense bf16 [N, K] matrix, so
/// prefill (m &gt; 1) runs it through the tensor-core GEMM instead of the SIMT tiles of <see cref="QuantizedGemm{TTile}"/>
/// (measured 1.2-1.4k tok/s at Llama-3-8B shapes). Each element is the reference's f32 dequantized value (v·s,
/// or (q − 8)·s + z) rounded to bf16 (nearest even): the same rounding the GEMM applies to x. One thread an output
/// word (two elements); K must be even (the GEMM needs K a multiple of 8). Costs a read of the packed weight and a
/// write and read of the bf16 copy a prefill call: small beside the GEMM at hundreds of tokens.
/// </summary>
public sealed class Bf16Dequantizer
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<uint>, ArrayView<float>, ArrayView<uint>, int, int> _int8;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<uint>, ArrayView<float>, ArrayView<uint>, int, int> _float8;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>, int, int> _int4;

    public Bf16Dequantizer(Accelerator accelerator)
    {
        _int8 = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<uint>, ArrayView<float>, ArrayView<uint>, int, int>(RowScaled<Int8PerRowValues>);
        _float8 = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<uint>, ArrayView<float>, ArrayView<uint>, int, int>(RowScaled<Float8PerRowValues>);
        _int4 = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<uint>, ArrayView<uint>, ArrayView<uint>, int, int>(Int4Grouped);
    }

    /// <param name="destination">[N, K/2] words of bf16 pairs.</param>
    public void Launch(AcceleratorStream stream, CudaWeight w, ArrayView<uint> destination)
    {
        int n = w.OutFeatures, k = w.InFeatures, words = n * (k / 2);
        ArrayView<uint> data = ((ArrayView<Uint4>)w.Data.View).Cast<uint>(), scales = w.Scales.View;
        switch (w.Format)
        {
            case CudaFormat.Int8PerRow or CudaFormat.Int8Dynamic:
                _int8(stream, words, data, scales.Cast<float>(), destination, k, w.RowBytes);
                break;
            case CudaFormat.Float8PerRow:
                _float8(stream, words, data, scales.Cast<float>(), destination, k, w.RowBytes);
                break;
            case CudaFormat.Int4Grouped:
                _int4(stream, words, data, scales, destination, k, w.GroupSize);
                break;
            default:
                throw new NotSupportedException($"No bf16 expansion for {w.FormatName}.");
        }
    }

    /// <summary>True for the formats <see cref="Launch"/> expands.</summary>
    public static bool Supports(CudaFormat format) =>
        format is CudaFormat.Int8PerRow or CudaFormat.Int8Dynamic or CudaFormat.Float8PerRow or CudaFormat.Int4Grouped;

    // Elements 2j and 2j + 1 of row r: bytes 2j and 2j + 1 of the row, in one word (rows start 16-byte aligned).
    private static void RowScaled<TValues>(Index1D t, ArrayView<uint> data, ArrayView<float> scales, ArrayView<uint> destination, int k, int rowBytes)
        where TValues : struct, IByteValues
    {
        int half = k / 2, r = t / half, j = t - (r * half);
        long at = ((long)r * rowBytes) + (2 * j);
        uint word = data[at / 4];
        int b = (int)(at & 3);
        var f = default(TValues);
        float s = scales[r];
        destination[t] = Pack(f.Value(word, b) * s, f.Value(word, b + 1) * s);
    }

    // Elements 2j and 2j + 1 of row r: the low and high nibble of byte j of the row's nibble stream.
    private static void Int4Grouped(Index1D t, ArrayView<uint> data, ArrayView<uint> scaleZero, ArrayView<uint> destination, int k, int groupSize)
    {
        int half = k / 2, r = t / half, j = t - (r * half);
        long at = ((long)r * half) + j;
        uint bits = (data[at / 4] >> (int)(8 * (at & 3))) & 0xFFu;
        uint pair = scaleZero[((long)r * (k / groupSize)) + (2 * j / groupSize)];
        float s = Int4GroupedGemv.Scale(pair), z = Int4GroupedGemv.Zero(pair);
        float lo = ((Magic.Float(bits & 0xFu) - (Magic.Value + 8f)) * s) + z;
        float hi = ((Magic.Float(bits >> 4) - (Magic.Value + 8f)) * s) + z;
        destination[t] = Pack(lo, hi);
    }

    /// <summary>Two floats as bf16 (round to nearest even), the first in the low half.</summary>
    private static uint Pack(float lo, float hi) => Bf16(lo) | (Bf16(hi) << 16);

    private static uint Bf16(float v)
    {
        uint bits = Interop.FloatAsInt(v);
        return (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
    }
}
