using System.Security.Cryptography;

namespace Lowbit.Models.IO;

/// <summary>Write-then-rename: outputs are built under a temporary sibling name and appear at their
/// destination only when complete, so a crash or an exception never leaves a half-written model.</summary>
internal static class AtomicPath
{
    /// <summary><c>&lt;path&gt;.tmp-&lt;random&gt;</c> in the same directory, so the final move is a rename
    /// on one file system.</summary>
    public static string TempSibling(string path) =>
        $"{Path.TrimEndingDirectorySeparator(Path.GetFullPath(path))}.tmp-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(6))}";

    /// <summary>Builds directory <paramref name="dir"/> atomically: <paramref name="write"/> fills a temporary
    /// sibling, which then replaces <paramref name="dir"/> (see <see cref="ReplaceDirectory"/>); on failure the
    /// temporary is deleted and <paramref name="dir"/> is untouched. A non-empty <paramref name="dir"/> is refused
    /// up front unless <paramref name="overwrite"/> is set.</summary>
    public static void WriteDirectory(string dir, bool overwrite, Action<string> write)
    {
        dir = Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir));
        if (!overwrite && Directory.Exists(dir) && Directory.EnumerateFileSystemEntries(dir).Any())
            throw new IOException($"{dir} exists and is not empty; pass overwrite to replace it.");
        Directory.CreateDirectory(Path.GetDirectoryName(dir)!);
        string temp = TempSibling(dir);
        Directory.CreateDirectory(temp);
        try
        {
            write(temp);
            ReplaceDirectory(temp, dir, overwrite);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>Moves the finished directory <paramref name="tempDir"/> to <paramref name="dir"/>. An empty
    /// <paramref name="dir"/> is replaced; a non-empty one only when <paramref name="overwrite"/> is set,
    /// and then it is moved aside first and restored if the move fails.</summary>
    public static void ReplaceDirectory(string tempDir, string dir, bool overwrite)
    {
        if (!Directory.Exists(dir))
        {
            Directory.Move(tempDir, dir);
            return;
        }
        if (Directory.EnumerateFileSystemEntries(dir).Any())
        {
            if (!overwrite)
                throw new IOException($"{dir} exists and is not empty; pass overwrite to replace it.");
            string aside = TempSibling(dir);
            Directory.Move(dir, aside);
            try
            {
                Directory.Move(tempDir, dir);
            }
            catch
            {
                Directory.Move(aside, dir);
                throw;
            }
            Directory.Delete(aside, recursive: true);
            return;
        }
        Directory.Delete(dir);
        Directory.Move(tempDir, dir);
    }

    /// <summary>Best-effort removal of a temporary file or directory while another exception is in flight.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
                Directory.Delete(path, recursive: true);
            else
                File.Delete(path);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
