using System.Runtime.InteropServices;
using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Lowbit.Backends;
using Lowbit.Cuda.Driver;

namespace Lowbit.Cuda;

/// <summary>
/// Decode steps as CUDA graphs: the launches of one step are captured on the backend's stream (ILGPU has no
/// graph API; the driver's stream capture takes its launches as they are) and replayed with one
/// <c>cuGraphLaunch</c> a token. Arguments are baked into a graph, so the step's token and position live in
/// device memory (<c>_stepInputs</c>), written before each replay and read by the kernels that need them
/// (Embedding, Rope, StoreKv, Attention: <see cref="Kernels.StepPosition"/>).
/// </summary>
public sealed partial class CudaBackend
{
    /// <summary>False runs every step eagerly (to measure what the graphs save).</summary>
    public bool RecordSteps { get; set; } = true;

    public IRecordedStep? RecordStep(Action step)
    {
        ArgumentNullException.ThrowIfNull(step);
        if (_stream is not CudaStream cuda || !RecordSteps)
            return null; // ILGPU's CPU accelerator: nothing to capture, launches stay eager.
        _stream.Synchronize();
        nint handle = cuda.StreamPtr;
        CudaDriver.Check(CudaDriver.cuStreamBeginCapture(handle, CudaDriver.CaptureModeRelaxed), "cuStreamBeginCapture");
        nint graph;
        _recording = true;
        try
        {
            step();
        }
        catch
        {
            // End the capture so the stream is usable again; the partial graph is discarded.
            if (CudaDriver.cuStreamEndCapture(handle, out nint partial) == 0 && partial != 0)
                CudaDriver.cuGraphDestroy(partial);
            throw;
        }
        finally
        {
            _recording = false;
        }
        CudaDriver.Check(CudaDriver.cuStreamEndCapture(handle, out graph), "cuStreamEndCapture");
        int result = CudaDriver.cuGraphInstantiateWithFlags(out nint executable, graph, 0);
        if (result != 0)
        {
            CudaDriver.cuGraphDestroy(graph);
            CudaDriver.Check(result, "cuGraphInstantiateWithFlags");
        }
        return new RecordedStep(this, graph, executable);
    }

    /// <summary>Launches a step records (graph nodes).</summary>
    public static unsafe int CountNodes(nint graph)
    {
        nuint count = 0;
        CudaDriver.Check(CudaDriver.cuGraphGetNodes(graph, null, ref count), "cuGraphGetNodes");
        return (int)count;
    }

    private sealed class RecordedStep(CudaBackend backend, nint graph, nint executable) : IRecordedStep
    {
        private readonly int[] _inputs = new int[2];
        private bool _disposed;

        /// <summary>Kernels in the graph.</summary>
        public int Nodes { get; } = CountNodes(graph);

        public void Replay(int token, int position)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _inputs[0] = token;
            _inputs[1] = position;
            var stream = backend._stream;
            backend._stepInputs.View.CopyFromCPU(stream, ref MemoryMarshal.GetArrayDataReference(_inputs), 2);
            CudaDriver.Check(CudaDriver.cuGraphLaunch(executable, ((CudaStream)stream).StreamPtr), "cuGraphLaunch");
        }

        public void Dispose()
        {
            if (_disposed)
                return;
            _disposed = true;
            backend._stream.Synchronize();
            CudaDriver.cuGraphExecDestroy(executable);
            CudaDriver.cuGraphDestroy(graph);
        }
    }
}
