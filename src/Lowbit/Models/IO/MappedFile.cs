using System.IO.MemoryMappedFiles;

namespace Lowbit.Models.IO;

/// <summary>A whole file mapped read-only, its pointer acquired once for the file's lifetime so that
/// tensor views can point straight into it.</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _pointer;

    public MappedFile(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
        using var stream = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Length = stream.Length;
        // An empty file cannot be mapped; callers reject it by its length.
        if (Length == 0)
            return;
        _map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read,
            HandleInheritability.None, leaveOpen: true);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref _pointer);
        _pointer += _view.PointerOffset;
    }

    public string Path { get; }

    public long Length { get; }

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

    public void Dispose()
    {
        if (_view is not null && _pointer != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _pointer = null;
        }
        _view?.Dispose();
        _map?.Dispose();
    }
}
