using System.Buffers.Binary;
using System.Text.Json;
using Lowbit.Models.IO;
using Lowbit.Tensors;

namespace Lowbit.Models.Safetensors;

/// <summary>
/// Writes a safetensors file one tensor at a time, so converting a model holds at most one tensor in
/// memory. All entries are declared up front (the header, which holds every offset, comes first in the
/// file); then each tensor's bytes are written in declaration order, then <see cref="Commit"/>.
/// The file is built at <c>&lt;path&gt;.tmp-&lt;random&gt;</c> and renamed onto <c>path</c> only by Commit;
/// a failed write, or disposal without Commit, deletes the temporary file and leaves <c>path</c> untouched.
/// </summary>
public sealed unsafe class SafetensorsWriter : IDisposable
{
    private const int ChunkBytes = 1 << 30;

    private readonly SafetensorsEntry[] _entries;
    private readonly string _tempPath;
    private FileStream? _stream;
    private int _next;

    public SafetensorsWriter(string path, IReadOnlyList<SafetensorsEntry> entries,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        Path = System.IO.Path.GetFullPath(path);
        _entries = [.. entries];
        byte[] header = BuildHeader(Path, _entries, metadata);
        _tempPath = AtomicPath.TempSibling(Path);
        Guarded(() =>
        {
            _stream = new FileStream(_tempPath, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            _stream.Write(length);
            _stream.Write(header);
        });
    }

    /// <summary>The destination; nothing is there (or the old file still is) until <see cref="Commit"/>.</summary>
    public string Path { get; }

    /// <summary>Writes the next declared tensor, whole.</summary>
    public void WriteTensor(string name, ReadOnlySpan<byte> data)
    {
        Next(name, data.Length);
        Write(data);
        _next++;
    }

    /// <summary>Writes the next declared tensor from <paramref name="tensor"/>, whose dtype and shape
    /// must match the declaration; in chunks, so tensors over 2 GiB work.</summary>
    public void WriteTensor(string name, Tensor tensor)
    {
        var entry = Next(name, tensor.ByteLength);
        if (entry.DType != tensor.DType || !entry.Shape.AsSpan().SequenceEqual(tensor.Shape))
            Fail(new ArgumentException($"{Path}: \"{name}\" was declared {entry} but the tensor is {tensor}."));
        for (long done = 0; done < tensor.ByteLength; done += ChunkBytes)
        {
            int count = (int)Math.Min(ChunkBytes, tensor.ByteLength - done);
            Write(new ReadOnlySpan<byte>((byte*)tensor.Data + done, count));
        }
        _next++;
    }

    /// <summary>Flushes to disk and renames the temporary file onto <see cref="Path"/>, replacing any file there.</summary>
    public void Commit()
    {
        if (_next != _entries.Length)
            Fail(new InvalidOperationException(
                $"{Path}: {_entries.Length - _next} declared tensors were never written, the first is {_entries[_next]}."));
        Guarded(() =>
        {
            var stream = Stream;
            stream.Flush(flushToDisk: true);
            stream.Dispose();
            _stream = null;
            File.Move(_tempPath, Path, overwrite: true);
        });
    }

    /// <summary>Abandons an uncommitted write: the temporary file is deleted.</summary>
    public void Dispose()
    {
        if (_stream is null)
            return;
        _stream.Dispose();
        _stream = null;
        AtomicPath.TryDelete(_tempPath);
    }

    private FileStream Stream => _stream ?? throw new InvalidOperationException($"{Path}: the writer is closed (committed, failed or disposed).");

    private SafetensorsEntry Next(string name, long byteCount)
    {
        _ = Stream;
        if (_next == _entries.Length)
            Fail(new InvalidOperationException($"{Path}: \"{name}\" written after all {_entries.Length} declared tensors."));
        var entry = _entries[_next];
        if (entry.Name != name)
            Fail(new InvalidOperationException($"{Path}: \"{name}\" written where the declared order expects {entry}."));
        if (entry.ByteLength != byteCount)
            Fail(new ArgumentException($"{Path}: \"{name}\" is declared {entry}, {entry.ByteLength} bytes, but {byteCount} bytes were given."));
        return entry;
    }

    private void Write(ReadOnlySpan<byte> data)
    {
        try
        {
            Stream.Write(data);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Dispose();
            throw;
        }
    }

    private void Guarded(Action action)
    {
        try
        {
            action();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private void Fail(Exception e)
    {
        Dispose();
        throw e;
    }

    /// <summary>The JSON header, padded with spaces so the data section starts 8-byte aligned.</summary>
    private static byte[] BuildHeader(string path, SafetensorsEntry[] entries, IReadOnlyDictionary<string, string>? metadata)
    {
        var names = new HashSet<string>();
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafetensorsHeader.MetadataKey);
                foreach (var (key, value) in metadata)
                    json.WriteString(key, value);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var e in entries)
            {
                if (e.Name == SafetensorsHeader.MetadataKey || !names.Add(e.Name))
                    throw new ArgumentException($"{path}: tensor name \"{e.Name}\" is reserved or declared twice.", nameof(entries));
                if (e.Shape.Any(d => d < 0))
                    throw new ArgumentException($"{path}: {e} has a negative dimension.", nameof(entries));
                json.WriteStartObject(e.Name);
                json.WriteString("dtype", e.DType.SafetensorsName());
                json.WriteStartArray("shape");
                foreach (int d in e.Shape)
                    json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset += e.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        while ((8 + buffer.Length) % 8 != 0)
            buffer.WriteByte((byte)' ');
        return buffer.ToArray();
    }
}
