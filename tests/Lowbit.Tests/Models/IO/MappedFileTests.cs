using Lowbit.Models.IO;

namespace Lowbit.Tests.Models.IO;

public sealed class MappedFileTests : IDisposable
{
    private readonly TempDir _dir = new();

    /// <summary>Mapped or copied into huge pages, a file reads back byte for byte (sizes under, at and past a 2 MB
    /// page, and past a page boundary by one byte).</summary>
    [Theory]
    [InlineData(1, false)]
    [InlineData(1, true)]
    [InlineData(2 << 20, true)]
    [InlineData((2 << 20) + 1, true)]
    [InlineData((5 << 20) + 12345, false)]
    [InlineData((5 << 20) + 12345, true)]
    public void Reads_back_the_file(int length, bool hugePages)
    {
        var bytes = new byte[length];
        new Random(length).NextBytes(bytes);
        string path = _dir.File("data.bin");
        File.WriteAllBytes(path, bytes);
        using var file = new MappedFile(path, hugePages);
        Assert.Equal(length, file.Length);
        Assert.Equal(hugePages, file.InHugePages);
        Assert.True(file.Bytes(0, length).SequenceEqual(bytes));
        if (hugePages)
            Assert.Equal(0, file.Pointer % (2 << 20)); // the copy starts on a huge-page boundary
    }

    [Fact]
    public void An_empty_file_has_no_bytes_either_way()
    {
        string path = _dir.File("empty.bin");
        File.WriteAllBytes(path, []);
        foreach (bool hugePages in new[] { false, true })
        {
            using var file = new MappedFile(path, hugePages);
            Assert.Equal(0, file.Length);
            Assert.True(file.Bytes(0, 0).IsEmpty);
        }
    }

    public void Dispose() => _dir.Dispose();
}
