using ILGPU;
using ILGPU.Runtime;
using Lowbit.Cuda.Kernels;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>The weight formats the CUDA backend has linear kernels for.</summary>
public enum CudaFormat
{
    /// <summary>F32, BF16 or F16 [N, K] as the host stores it (<see cref="DenseLinear"/>).</summary>
    Dense,

    /// <summary>int8wo: offset-binary bytes [N, Kp] + F32 scales [N] (<see cref="Int8PerRowValues"/>).</summary>
    Int8PerRow,

    /// <summary>int8dq: the int8wo layout; activations quantized per token at run time (<see cref="Int8DynamicCodes"/>).</summary>
    Int8Dynamic,

    /// <summary>fp8wo: E4M3 bytes [N, Kp] + F32 scales [N] (<see cref="Float8PerRowValues"/>).</summary>
    Float8PerRow,

    /// <summary>int4wo-G: a nibble stream [N, K/2] + bf16 scale/zero pairs [N, K/G] (<see cref="Int4GroupedGemv"/>).</summary>
    Int4Grouped,
}

/// <summary>
/// A linear weight in device memory, in the CUDA kernels' layout of its format (each layout is documented on
/// the format's kernel; <see cref="CudaFormat"/> points to it). Made by the backend when it uploads a host weight
/// (found again by the host weight) or by <see cref="CudaBackend.RandomWeight"/>; <see cref="CudaBackend.Linear"/>
/// accepts it directly. Each buffer is one ILGPU allocation of fewer than 2^31 elements (16-byte vectors for
/// Data, 32-bit words for Scales).
/// </summary>
public sealed class CudaWeight : IWeight
{
    internal CudaWeight(Accelerator accelerator, CudaFormat format, DType denseType, int n, int k, int groupSize, string formatName)
    {
        Format = format;
        DenseType = denseType;
        OutFeatures = n;
        InFeatures = k;
        GroupSize = groupSize;
        FormatName = formatName;
        RowBytes = format switch
        {
            CudaFormat.Dense => k * denseType.Size(),
            CudaFormat.Int4Grouped => k / 2,
            _ => RowScaledGemv<Int8PerRowValues>.RowBytes(k),
        };
        long scaleWords = format switch
        {
            CudaFormat.Dense => 0,
            CudaFormat.Int4Grouped => (long)n * (k / groupSize),
            _ => n,
        };
        // Padded to whole 16-byte vectors: a dense row's last vector load stays inside the buffer.
        Data = accelerator.Allocate1D<Uint4>(Math.Max(1, ((long)n * RowBytes + 15) / 16));
        Scales = accelerator.Allocate1D<uint>(Math.Max(1, scaleWords));
        ByteLength = (long)n * RowBytes + 4 * scaleWords;
    }

    public CudaFormat Format { get; }

    /// <summary>The element type of a <see cref="CudaFormat.Dense"/> weight.</summary>
    public DType DenseType { get; }

    public int OutFeatures { get; }
    public int InFeatures { get; }

    /// <summary>G of int4wo-G; K otherwise.</summary>
    public int GroupSize { get; }

    public string FormatName { get; }

    /// <summary>Bytes of one row of <see cref="Data"/> (padding included).</summary>
    public int RowBytes { get; }

    /// <summary>Bytes a GEMV reads: the packed rows plus the scales (and zeros).</summary>
    public long ByteLength { get; }

    /// <summary>The packed weight [N, RowBytes].</summary>
    public MemoryBuffer1D<Uint4, Stride1D.Dense> Data { get; }

    /// <summary>F32 row scales [N], or int4's scale/zero pairs [N, K/G]; one unused word for dense.</summary>
    public MemoryBuffer1D<uint, Stride1D.Dense> Scales { get; }

    public void Dispose()
    {
        Data.Dispose();
        Scales.Dispose();
    }
}
