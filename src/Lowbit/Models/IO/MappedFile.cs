using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Lowbit.Tensors;

namespace Lowbit.Models.IO;

/// <summary>How a checkpoint's bytes sit in memory while a model runs.</summary>
public enum WeightMemory
{
    /// <summary><see cref="HugePages"/> for a model that runs on the CPU with its checkpoint's weights (Linux),
    /// <see cref="Mapped"/> otherwise (a GPU copies the weights; load-time quantization reads them once).</summary>
    Auto,

    /// <summary>The file memory-mapped: no copy, pages read on first touch and shared with other processes.</summary>
    Mapped,

    /// <summary>The file read into anonymous memory in 2 MB transparent huge pages (Linux <c>madvise</c>; elsewhere
    /// plain pages): one TLB entry covers 512 times more weights, which CPU decode (a full pass over every weight
    /// a token) measured 4-5% faster on the 1.1B-shape BF16 model (docs/benchmarks-cpu.md); costs a read of the
    /// file at load and the pages are the process's own.</summary>
    HugePages,
}

/// <summary>A whole file, read-only, at one pointer for the file's lifetime so that tensor views can point
/// straight into it: memory-mapped, or copied into huge pages (<see cref="WeightMemory"/>).</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;
    private byte* _copy;

    public MappedFile(string path, bool hugePages = false)
    {
        Path = System.IO.Path.GetFullPath(path);
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Length = stream.Length;
        // An empty file cannot be mapped; callers reject it by its length.
        if (Length == 0)
            return;
        if (hugePages)
        {
            _pointer = _copy = ReadIntoHugePages(stream, Path, Length);
            return;
        }
        _map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read,
            HandleInheritability.None, leaveOpen: true);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _pointer);
        _pointer += _view.PointerOffset;
    }

    public string Path { get; }

    public long Length { get; }

    /// <summary>True when the bytes were copied into huge pages rather than mapped.</summary>
    public bool InHugePages => _copy != null;

    public nint Pointer => _pointer != null || Length == 0 ? (nint)_pointer
        : throw new ObjectDisposedException(Path);

    /// <summary>Bytes [offset, offset + count); count must fit a span.</summary>
    public ReadOnlySpan<byte> Bytes(long offset, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(offset + count, Length);
        return count == 0 ? [] : new ReadOnlySpan<byte>((byte*)Pointer + offset, count);
    }

    private static byte* ReadIntoHugePages(FileStream stream, string path, long length)
    {
        var memory = (byte*)HugePages.Allocate(length);
        try
        {
            for (long done = 0; done < length;)
            {
                int read = stream.Read(new Span<byte>(memory + done, (int)Math.Min(1L << 30, length - done)));
                if (read <= 0)
                    throw new EndOfStreamException($"{path}: the file ended at byte {done} of {length} while it was read.");
                done += read;
            }
            return memory;
        }
        catch
        {
            NativeMemory.AlignedFree(memory);
            throw;
        }
    }

    public void Dispose()
    {
        if (_copy != null)
        {
            NativeMemory.AlignedFree(_copy);
            _copy = _pointer = null;
        }
        if (_view is not null && _pointer != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
