using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Backends;
using Lowbit.Cuda.Kernels;
using Lowbit.Models;
using Lowbit.Quantization.Formats;
using Lowbit.Tensors;

namespace Lowbit.Cuda;

/// <summary>
/// The NVIDIA backend: ILGPU kernels compiled to PTX at run time (only the driver is needed). Activations
/// and the KV cache live in device memory (<see cref="Allocate"/>: a <see cref="Tensor"/> whose Data is a
/// device address, owning its buffer); weights are uploaded once by <see cref="PrepareWeights"/> and found
/// again by their host tensor. An operation maps a <see cref="TensorView"/> back to the buffer that holds it
/// (a binary search over this backend's allocations, no allocation). Kernels run in order on the
/// accelerator's default stream; <see cref="CopyToHost"/> waits for them.
/// Any ILGPU accelerator works: the tests run the same kernels on ILGPU's CPU accelerator, which checks their
/// logic but not the PTX (ILGPU-NOTES.md).
/// </summary>
public sealed unsafe partial class CudaBackend : IBackend
{
    private readonly Context? _context;
    private readonly Accelerator _accelerator;
    private readonly List<MemoryBuffer1D<byte, Stride1D.Dense>> _allocations = []; // sorted by address
    private readonly Dictionary<Tensor, MemoryBuffer1D<byte, Stride1D.Dense>> _uploads = new(ReferenceEqualityComparer.Instance);
    private readonly Kernels.Embedding _embedding;
    private readonly Kernels.RmsNorm _rmsNorm;
    private readonly DenseLinear _linear;
    private readonly Kernels.Rope _rope;
    private readonly Kernels.Attention _attention;
    private readonly Elementwise _elementwise;
    private MemoryBuffer1D<int, Stride1D.Dense>? _tokens;
    private MemoryBuffer1D<float, Stride1D.Dense>? _scores;
    private MemoryBuffer1D<float, Stride1D.Dense>? _ropeCos, _ropeSin;
    private RopeTable? _ropeUploaded;

    /// <summary>Runs on <paramref name="accelerator"/>; disposes it (and <paramref name="context"/>, when
    /// given) with the backend.</summary>
    public CudaBackend(Accelerator accelerator, Context? context = null)
    {
        ArgumentNullException.ThrowIfNull(accelerator);
        _accelerator = accelerator;
        _context = context;
        _embedding = new Kernels.Embedding(accelerator);
        _rmsNorm = new Kernels.RmsNorm(accelerator);
        _linear = new DenseLinear(accelerator);
        _rope = new Kernels.Rope(accelerator);
        _attention = new Kernels.Attention(accelerator);
        _elementwise = new Elementwise(accelerator);
    }

    /// <summary>The first CUDA GPU.</summary>
    /// <exception cref="NotSupportedException">No NVIDIA driver or no GPU: one line saying which.</exception>
    public static CudaBackend Open()
    {
        Context? context = null;
        Accelerator accelerator;
        try
        {
            context = Context.Create(b => b.Cuda());
            var devices = context.GetCudaDevices();
            if (devices.Count == 0)
                throw new NotSupportedException("--device cuda: no CUDA GPU found (needs an NVIDIA GPU and its driver's libcuda.so.1; no CUDA toolkit).");
            accelerator = devices[0].CreateAccelerator(context);
        }
        catch (Exception e) when (e is not NotSupportedException)
        {
            context?.Dispose();
            throw new NotSupportedException($"--device cuda: the CUDA driver could not be used ({e.GetType().Name}: {e.Message.ReplaceLineEndings(" ")}).", e);
        }
        catch
        {
            context?.Dispose();
            throw;
        }
        return new CudaBackend(accelerator, context);
    }

    /// <summary>True when <see cref="Open"/> would find a GPU (the driver loads and lists one).</summary>
    public static bool IsAvailable()
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException or TypeInitializationException
                                      or CudaException or InvalidOperationException or NotSupportedException)
        {
            return false;
        }
    }

    public string Name => $"cuda ({_accelerator.Name}, {_accelerator.MemorySize >> 20} MiB)";

    public Accelerator Accelerator => _accelerator;

    public bool UsesHostMemory => false;

    public Tensor Allocate(DType dtype, int rows, int columns)
    {
        long bytes = Math.Max(16, ((long)rows * columns * dtype.Size() + 15) & ~15L);
        var buffer = _accelerator.Allocate1D<byte>(bytes);
        buffer.MemSetToZero();
        Register(buffer);
        return Tensor.View(buffer.NativePtr, dtype, [rows, columns], new Allocation(this, buffer));
    }

    /// <summary>Uploads every weight (norms, biases, the embedding and every linear layer) once.</summary>
    public void PrepareWeights(ModelWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        foreach (var (name, weight) in weights.Linears())
        {
            if (weight is not DenseWeight)
                throw new NotSupportedException($"\"{name}\" is {weight.FormatName}, which the CUDA backend has no linear kernel for yet (dense bf16, f16 and f32 only).");
        }
        Upload(weights.Embedding);
        Upload(weights.FinalNorm);
        foreach (var layer in weights.Layers)
        {
            Upload(layer.AttentionNorm);
            Upload(layer.FeedForwardNorm);
            foreach (var bias in new[] { layer.QueryBias, layer.KeyBias, layer.ValueBias })
            {
                if (bias is not null)
                    Upload(bias);
            }
        }
        foreach (var (_, weight) in weights.Linears())
            Upload(((DenseWeight)weight).Tensor);
        _accelerator.Synchronize();
    }

    public void CopyFromHost(ReadOnlySpan<float> source, TensorView destination)
    {
        if (source.Length != destination.ElementCount)
            throw new ArgumentException($"{source.Length} floats do not fill {destination}.", nameof(source));
        F32(destination).CopyFromCPU(ref MemoryMarshal.GetReference(source), source.Length);
        _accelerator.Synchronize();
    }

    public void CopyToHost(TensorView source, Span<float> destination)
    {
        if (destination.Length != source.ElementCount)
            throw new ArgumentException($"{source} does not fit {destination.Length} floats.", nameof(destination));
        _accelerator.Synchronize();
        F32(source).CopyToCPU(ref MemoryMarshal.GetReference(destination), destination.Length);
        _accelerator.Synchronize();
    }

    public void Embedding(Tensor table, ReadOnlySpan<int> tokens, TensorView destination)
    {
        if (_tokens is null || _tokens.Length < tokens.Length)
        {
            _tokens?.Dispose();
            _tokens = _accelerator.Allocate1D<int>(Math.Max(64, tokens.Length));
        }
        var ids = _tokens.View.SubView(0, tokens.Length);
        ids.CopyFromCPU(ref MemoryMarshal.GetReference(tokens), tokens.Length);
        _embedding.Launch(ids, Words(table), F32(destination), tokens.Length, table.Columns, DenseElements.Code(table.DType));
    }

    public void RmsNorm(TensorView x, Tensor weight, float eps, TensorView destination) =>
        _rmsNorm.Launch(F32(x), Words(weight).Cast<float>(), F32(destination), x.Rows, x.Columns, eps);

    public void Linear(TensorView x, IWeight weight, TensorView destination)
    {
        if (weight is not DenseWeight dense)
            throw new NotSupportedException($"The CUDA backend has no linear kernel for {weight.FormatName} yet.");
        if (TensorCoreLinear(x, dense, destination))
            return;
        var w = dense.Tensor;
        int dtype = DenseElements.Code(w.DType);
        var xs = F32(x);
        bool vector = DenseLinear.VectorLoadsFit(x.Columns, dtype, x.Data - AllocationOf(x.Data).NativePtr);
        _linear.Launch(xs, Words(w), F32(destination), x.Rows, dense.OutFeatures, dense.InFeatures, dtype, vector);
    }

    public void AddBias(TensorView x, Tensor bias) => _elementwise.AddBias(F32(x), Words(bias).Cast<float>(), x.Columns);

    public void Rope(TensorView x, RopeTable rope, int startPos)
    {
        if (!ReferenceEquals(rope, _ropeUploaded))
        {
            _ropeCos?.Dispose();
            _ropeSin?.Dispose();
            _ropeCos = _accelerator.Allocate1D(rope.Cos.ToArray());
            _ropeSin = _accelerator.Allocate1D(rope.Sin.ToArray());
            _ropeUploaded = rope;
        }
        _rope.Launch(F32(x), _ropeCos!.View, _ropeSin!.View, x.Rows, x.Columns / rope.HeadDim, rope.HeadDim, startPos);
    }

    public void Attention(TensorView q, TensorView keys, TensorView values, int startPos, int heads, int kvHeads, int headDim, TensorView destination)
    {
        if (heads % kvHeads != 0)
            throw new ArgumentException($"Attention: heads ({heads}) must be a multiple of kvHeads ({kvHeads}).", nameof(kvHeads));
        if (startPos + q.Rows > keys.Rows)
            throw new ArgumentOutOfRangeException(nameof(startPos), $"positions up to {startPos + q.Rows} exceed the cache of {keys.Rows} rows.");
        long scoreLength = (long)q.Rows * heads * keys.Rows;
        if (_scores is null || _scores.Length < scoreLength)
        {
            _scores?.Dispose();
            _scores = _accelerator.Allocate1D<float>(scoreLength);
        }
        var shape = new AttentionShape
        {
            Heads = heads,
            KvHeads = kvHeads,
            HeadDim = headDim,
            StartPos = startPos,
            MaxSequence = keys.Rows,
            Scale = 1f / MathF.Sqrt(headDim),
        };
        _attention.Launch(F32(q), F32(keys), F32(values), _scores.View, F32(destination), q.Rows, shape);
    }

    public void SiluMul(TensorView gate, TensorView up) => _elementwise.SiluMul(F32(gate), F32(up));

    public void Add(TensorView y, TensorView x) => _elementwise.Add(F32(y), F32(x));

    public void Dispose()
    {
        _accelerator.Synchronize();
        DisposeTensorCores();
        foreach (var buffer in _uploads.Values)
            buffer.Dispose();
        _uploads.Clear();
        foreach (var buffer in _allocations)
            buffer.Dispose();
        _allocations.Clear();
        _tokens?.Dispose();
        _scores?.Dispose();
        _ropeCos?.Dispose();
        _ropeSin?.Dispose();
        _accelerator.Dispose();
        _context?.Dispose();
    }

    /// <summary>The device copy of a host tensor as 32-bit words, uploaded on first use (PrepareWeights
    /// uploads a model's up front, so the first token does not pay for it).</summary>
    private ArrayView<uint> Words(Tensor host) => ((ArrayView<byte>)Upload(host).View).Cast<uint>();

    private MemoryBuffer1D<byte, Stride1D.Dense> Upload(Tensor host)
    {
        if (_uploads.TryGetValue(host, out var buffer))
            return buffer;
        long bytes = host.ByteLength;
        // Padded to 16 bytes so the last row's 16-byte loads stay inside the buffer.
        buffer = _accelerator.Allocate1D<byte>(Math.Max(16, (bytes + 15) & ~15L));
        buffer.MemSetToZero();
        const long chunk = 1L << 30;
        for (long offset = 0; offset < bytes; offset += chunk)
        {
            long length = Math.Min(chunk, bytes - offset);
            buffer.View.SubView(offset, length).CopyFromCPU(ref Unsafe.AsRef<byte>((void*)(host.Data + (nint)offset)), length);
        }
        _uploads.Add(host, buffer);
        return buffer;
    }

    /// <summary>The F32 device view of a tensor view made by <see cref="Allocate"/>.</summary>
    private ArrayView<float> F32(TensorView view)
    {
        if (view.DType != DType.F32)
            throw new NotSupportedException($"The CUDA backend's activations are F32; got {view}.");
        var buffer = AllocationOf(view.Data);
        long offset = view.Data - buffer.NativePtr, bytes = view.ElementCount * sizeof(float);
        if (offset + bytes > buffer.Length)
            throw new ArgumentException($"{view} runs past the end of its device buffer.", nameof(view));
        return ((ArrayView<byte>)buffer.View).SubView(offset, bytes).Cast<float>();
    }

    private MemoryBuffer1D<byte, Stride1D.Dense> AllocationOf(nint address)
    {
        int lo = 0, hi = _allocations.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var buffer = _allocations[mid];
            if (address < buffer.NativePtr)
                hi = mid - 1;
            else if (address >= buffer.NativePtr + (nint)buffer.Length)
                lo = mid + 1;
            else
                return buffer;
        }
        throw new ArgumentException($"Address 0x{address:x} is not in this CUDA backend's memory: allocate activations with IBackend.Allocate.");
    }

    private void Register(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        int i = 0;
        while (i < _allocations.Count && _allocations[i].NativePtr < buffer.NativePtr)
            i++;
        _allocations.Insert(i, buffer);
    }

    private void Free(MemoryBuffer1D<byte, Stride1D.Dense> buffer)
    {
        if (_allocations.Remove(buffer))
            buffer.Dispose();
    }

    /// <summary>Owner of an <see cref="Allocate"/>d tensor's buffer.</summary>
    private sealed class Allocation(CudaBackend backend, MemoryBuffer1D<byte, Stride1D.Dense> buffer) : IDisposable
    {
        public void Dispose() => backend.Free(buffer);
    }
}
